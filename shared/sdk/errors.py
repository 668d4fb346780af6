"""What can go wrong talking to the gateway, as one exception hierarchy.

Callers branch on the type (`except RateLimited`) or on `reason`, which for a
rejected frame is the gateway's `message` (a `shared.events.RejectReason`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.events import RejectReason


class GatewayError(Exception):
    """Base of every error the SDK raises about the gateway or the connection."""


class AuthenticationError(GatewayError):
    """The gateway refused the token; retrying with the same token cannot succeed."""

    def __init__(self, reason: str, *, code: int | None = 1008) -> None:
        self.reason = reason
        self.code = code
        super().__init__(
            f"the gateway refused the token ({reason}): check the service's token "
            "setting (ATS_*_TOKEN) or issue a new token for it"
        )


class ProtocolError(GatewayError):
    """The gateway answered with something this SDK does not understand."""


class ClientClosed(GatewayError):
    """The client was closed (or stopped on a fatal error) before the call completed."""


class AckTimeout(GatewayError, TimeoutError):
    """No acknowledgement within the timeout; the frame may or may not be stored.

    Publishing again with the same `id` is safe: the gateway stores an id once.
    """

    def __init__(self, frame_id: UUID, timeout: float, *, why: str = "") -> None:
        self.id = frame_id
        self.timeout = timeout
        why = why or "is the gateway reachable?"
        super().__init__(
            f"no acknowledgement for frame {frame_id} within {timeout:g}s ({why}); "
            "publish again with the same id to be safe"
        )


class PublishRejected(GatewayError):
    """The gateway (or local validation) refused a frame; the connection lives on.

    Attributes:
        reason: the gateway's `message`, one of `RejectReason`.
        detail: the gateway's explanation (a string or a list of field errors).
        id: the id of the refused frame, when known.
    """

    reason: RejectReason | str = ""

    def __init__(self, reason: RejectReason | str, detail: Any = None, *, id: UUID | None = None):
        self.reason = reason
        self.detail = detail
        self.id = id
        super().__init__(f"the gateway rejected the frame: {reason}: {_describe(detail)}")

    @property
    def message(self) -> str:
        """The gateway's `message`, the same as `reason`."""
        return str(self.reason)

    @classmethod
    def from_reply(
        cls, reason: str, detail: Any = None, *, id: UUID | None = None
    ) -> PublishRejected:
        """The most specific subclass for a rejection `reason`."""
        try:
            known = RejectReason(reason)
        except ValueError:
            return PublishRejected(reason, detail, id=id)
        return _BY_REASON[known](known, detail, id=id)


class BadJson(PublishRejected):
    """The frame was not JSON (a bug in the SDK or a proxy mangling frames)."""


class InvalidEvent(PublishRejected):
    """The frame does not match the protocol models; `detail` lists the bad fields."""


class ForbiddenEvent(PublishRejected):
    """This client's role may not publish this category, or to this recipient."""


class TooLarge(PublishRejected):
    """The frame exceeds the gateway's size limit; send less (summarize, split)."""


class RateLimited(PublishRejected):
    """Too many frames per second; the SDK retries these until the ack timeout."""


class Unavailable(PublishRejected):
    """The gateway could not store the frame; the SDK retries these until the ack timeout."""


_BY_REASON: dict[RejectReason, type[PublishRejected]] = {
    RejectReason.BAD_JSON: BadJson,
    RejectReason.VALIDATION_ERROR: InvalidEvent,
    RejectReason.FORBIDDEN_EVENT: ForbiddenEvent,
    RejectReason.TOO_LARGE: TooLarge,
    RejectReason.RATE_LIMITED: RateLimited,
    RejectReason.UNAVAILABLE: Unavailable,
}


def _describe(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            else:
                parts.append(str(item))
        more = f" (+{len(detail) - 5} more)" if len(detail) > 5 else ""
        return "; ".join(parts) + more
    return str(detail)
