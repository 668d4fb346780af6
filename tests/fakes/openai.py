"""A local OpenAI-compatible chat-completions server, scripted per test.

It answers `POST /v1/chat/completions` the way OpenAI does
(https://platform.openai.com/docs/api-reference/chat): a `chat.completion` object
with `id`, `object`, `created`, `model`, `choices[{index, message{role, content,
tool_calls?}, finish_reason}]` and `usage`, or, with `"stream": true`, server-sent
`chat.completion.chunk` events ending in `data: [DONE]`. Errors have OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, with the same status codes (and
`retry-after` on 429), so the real `openai` client and LangChain on top of it retry,
raise and parse exactly as they would against the real service.

Answers are scripted: `llm.script(...)` queues answers served in request order;
`llm.when("text", ...)` queues answers for requests whose messages contain "text"
(checked first, so tests can route by article, say). An answer is a `Reply` (content
or tool calls, optionally delayed), an `ErrorReply` (status, message, headers), or a
function of the request returning one. A request with nothing scripted for it gets
`default` when set, otherwise a 400 naming the problem, so a test that under-scripts
fails loudly. Every request is recorded in `llm.requests`.

    async with FakeOpenAI() as llm:
        llm.script(json_reply({"sentiment": 0.5}), rate_limited(retry_after=0.05))
        chat = ChatOpenAI(base_url=llm.base_url, api_key="sk-test", model="fake-model")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import LocalServer

DEFAULT_MODEL = "fake-model"


@dataclass(frozen=True)
class ToolCall:
    """A function call the model makes; `arguments` is JSON text (a dict is dumped)."""

    name: str
    arguments: str | Mapping[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def to_json(self, index: int | None = None) -> dict[str, Any]:
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        call: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": args},
        }
        if index is not None:
            call["index"] = index
        return call


@dataclass(frozen=True)
class Reply:
    """A successful completion: text `content` and/or `tool_calls`, after `delay` seconds."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    delay: float = 0.0
    refusal: str | None = None

    @property
    def reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True)
class ErrorReply:
    """An OpenAI error response."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


type Answer = Reply | ErrorReply | Callable[[ChatRequest], Reply | ErrorReply]


def reply(content: str, *, delay: float = 0.0, finish_reason: str | None = None) -> Reply:
    """A plain text answer."""
    return Reply(content=content, delay=delay, finish_reason=finish_reason)


def json_reply(value: Any, *, delay: float = 0.0) -> Reply:
    """An answer whose content is `value` as JSON (what JSON mode returns)."""
    return Reply(content=json.dumps(value), delay=delay)


def tool_reply(name: str, arguments: str | Mapping[str, Any]) -> Reply:
    """An answer that calls one function (what function calling returns)."""
    return Reply(tool_calls=(ToolCall(name, arguments),))


def slow(answer: Reply | ErrorReply, seconds: float) -> Reply | ErrorReply:
    """`answer`, held back `seconds` (beyond a client's timeout, it is a timeout)."""
    if isinstance(answer, Reply):
        return Reply(
            content=answer.content,
            tool_calls=answer.tool_calls,
            finish_reason=answer.finish_reason,
            refusal=answer.refusal,
            delay=seconds,
        )
    return ErrorReply(
        status=answer.status,
        message=answer.message,
        type=answer.type,
        code=answer.code,
        param=answer.param,
        headers=answer.headers,
        delay=seconds,
    )


def rate_limited(*, retry_after: float | None = 1.0) -> ErrorReply:
    """A 429 as OpenAI sends it; `retry_after` seconds go in the Retry-After header."""
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    return ErrorReply(
        status=429,
        message="Rate limit reached for requests. Please try again later.",
        type="requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def server_error(status: int = 500) -> ErrorReply:
    """A 5xx as OpenAI sends it."""
    return ErrorReply(
        status=status,
        message="The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )


def bad_request(message: str, *, code: str | None = None, param: str | None = None) -> ErrorReply:
    return ErrorReply(status=400, message=message, code=code, param=param)


@dataclass
class ChatRequest:
    """One request the fake received, as sent."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int | None = None  # the status it was answered with; None while pending

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def response_format(self) -> dict[str, Any] | None:
        value = self.body.get("response_format")
        return value if isinstance(value, dict) else None

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def contents(self, role: str | None = None) -> list[str]:
        """The text of each message (of `role`), in order."""
        return [message_text(m) for m in self.messages if role is None or m.get("role") == role]

    @property
    def text(self) -> str:
        """Every message's text, joined: what `when()` matches against."""
        return "\n".join(self.contents())


def message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class FakeOpenAI:
    """The scripted server. `base_url` is what an OpenAI client takes (`.../v1`).

    Args:
        api_key: when set, requests without `Authorization: Bearer <api_key>` get a 401.
        default: the answer for requests with nothing scripted; None: a 400.
    """

    def __init__(self, *, api_key: str | None = None, default: Answer | None = None) -> None:
        self.api_key = api_key
        self.default = default
        self.requests: list[ChatRequest] = []
        self._queue: deque[Answer] = deque()
        self._rules: list[tuple[str, deque[Answer]]] = []
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        self._server = LocalServer(self.app, name="fake OpenAI")

    # ------------------------------------------------------------------ scripting

    def script(self, *answers: Answer) -> None:
        """Queue answers for the next requests that no `when()` rule takes."""
        self._queue.extend(answers)

    def when(self, contains: str, *answers: Answer) -> None:
        """Queue answers for requests whose messages contain `contains`."""
        for text, queue in self._rules:
            if text == contains:
                queue.extend(answers)
                return
        self._rules.append((contains, deque(answers)))

    @property
    def pending(self) -> int:
        """Scripted answers not served yet."""
        return len(self._queue) + sum(len(q) for _, q in self._rules)

    def requests_containing(self, text: str) -> list[ChatRequest]:
        return [r for r in self.requests if text in r.text]

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"{self._server.url}/v1"

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        self._closing.set()  # releases answers still being held back
        await self._server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ endpoints

    async def _models(self, request: Request) -> Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "fake"}
                ],
            }
        )

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        recorded = ChatRequest(
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body if isinstance(body, dict) else {},
        )
        self.requests.append(recorded)
        response = await self._answer(request, recorded, body)
        recorded.status = response.status_code
        return response

    async def _answer(self, request: Request, recorded: ChatRequest, body: Any) -> Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        if not isinstance(body, dict):
            return _error(
                ErrorReply(
                    400,
                    "We could not parse the JSON body of your request. (HINT: This likely "
                    "means you aren't using your HTTP library correctly. The OpenAI API "
                    "expects a JSON payload, but what was sent was not valid JSON.",
                )
            )
        if (invalid := _validate(body)) is not None:
            return _error(invalid)
        answer = self._next_answer(recorded)
        if answer is None:
            return _error(
                ErrorReply(
                    400,
                    "the fake OpenAI server has no scripted answer for this request: "
                    "script one with FakeOpenAI.script() or .when(), or set `default`",
                    code="fake_unscripted",
                )
            )
        resolved = answer(recorded) if callable(answer) else answer
        if resolved.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), resolved.delay)
        if isinstance(resolved, ErrorReply):
            return _error(resolved)
        completion_id = f"chatcmpl-fake{next(self._ids):06d}"
        model = recorded.model or DEFAULT_MODEL
        usage = _usage(recorded, resolved)
        if recorded.stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _chunks(completion_id, model, resolved, usage if include_usage else None),
                media_type="text/event-stream",
                headers={"x-request-id": completion_id},
            )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": resolved.content,
            "refusal": resolved.refusal,
            "annotations": [],
        }
        if resolved.tool_calls:
            message["tool_calls"] = [c.to_json() for c in resolved.tool_calls]
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": resolved.reason,
                    }
                ],
                "usage": usage,
            },
            headers={"x-request-id": completion_id},
        )

    def _next_answer(self, recorded: ChatRequest) -> Answer | None:
        text = recorded.text
        for contains, queue in self._rules:
            if queue and contains in text:
                return queue.popleft()
        if self._queue:
            return self._queue.popleft()
        return self.default

    def _check_key(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return _error(
            ErrorReply(
                401,
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        )


def _validate(body: dict[str, Any]) -> ErrorReply | None:
    """The checks OpenAI makes that a client bug would trip."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return ErrorReply(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return ErrorReply(
            400, "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            code="empty_array", param="messages",
        )  # fmt: skip
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            return ErrorReply(
                400,
                f"Invalid value for 'messages[{i}].role': expected one of "
                f"{', '.join(sorted(_ROLES))}.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
    fmt = body.get("response_format")
    if fmt is not None and (
        not isinstance(fmt, dict) or fmt.get("type") not in {"text", "json_object", "json_schema"}
    ):
        return ErrorReply(
            400, "Invalid 'response_format.type'.", param="response_format.type",
            code="invalid_value",
        )  # fmt: skip
    return None


def _error(e: ErrorReply) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": e.message, "type": e.type, "param": e.param, "code": e.code}},
        status_code=e.status,
        headers={"x-request-id": f"req_{uuid.uuid4().hex[:24]}", **e.headers},
    )


def _tokens(text: str) -> int:
    return len(text.split())


def _usage(request: ChatRequest, answer: Reply) -> dict[str, int]:
    prompt = sum(_tokens(t) for t in request.contents()) + 3 * len(request.messages)
    completion = _tokens(answer.content or "") + sum(
        _tokens(json.dumps(c.to_json())) for c in answer.tool_calls
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _chunks(
    completion_id: str, model: str, answer: Reply, usage: dict[str, int] | None
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return f"data: {json.dumps(data)}\n\n"

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if answer.content:
        # Word by word, as a model streams tokens.
        words = answer.content.split(" ")
        for i, word in enumerate(words):
            yield chunk({"content": word if i == len(words) - 1 else word + " "})
    for index, call in enumerate(answer.tool_calls):
        yield chunk({"tool_calls": [call.to_json(index)]})
    yield chunk({}, answer.reason)
    if usage is not None:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        yield f"data: {json.dumps(data)}\n\n"
    yield "data: [DONE]\n\n"
