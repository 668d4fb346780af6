"""structlog for every service: console in a TTY, JSON otherwise, secrets redacted.

Standard-library loggers (uvicorn, SQLAlchemy, alembic) go through the same
processors, so a token in a WebSocket URL logged by uvicorn is redacted too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "***"

# Keys whose values are secrets wherever they appear in an event dict.
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|api[_-]?key|apikey|authorization|credential|private[_-]?key)",
    re.IGNORECASE,
)
# Secrets embedded in free text: query parameters, bearer headers, our token format.
_SECRET_IN_TEXT = [
    (
        re.compile(r"((?:[a-z_]*token|api_key|apikey|key|secret|password)=)[^&\s\"']+", re.I),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\1" + REDACTED),
    (re.compile(r"\bats_[a-z]+_[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1" + REDACTED + "@"),
]


def redact_text(text: str) -> str:
    """Scrub secrets out of a free-text string."""
    for pattern, repl in _SECRET_IN_TEXT:
        text = pattern.sub(repl, text)
    return text


def _redact_value(key: str | None, value: Any) -> Any:
    if key is not None and _SECRET_KEY.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(None, v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace secret values and scrub secrets from text."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key if key != "event" else None, event_dict[key])
    return event_dict


def configure_logging(
    *, level: str = "INFO", json: bool | None = None, service: str | None = None
) -> None:
    """Set up structlog and route the standard library's logging through it."""
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        redact_secrets,
    ]
    if service:
        shared.insert(0, _bind_service(service))
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # The access log would repeat every request; the gateway logs what matters itself.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every request at INFO: a poller would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _identity(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    return event_dict


def _bind_service(service: str) -> Any:
    def processor(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
