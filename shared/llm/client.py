"""Ask an OpenAI-compatible model for one pydantic object, through LangChain.

Any endpoint that speaks chat completions works (OpenAI, OpenRouter, vLLM, Ollama,
llama.cpp, LM Studio). The object is asked for with
`with_structured_output(schema, method="json_mode", include_raw=True)`: JSON mode is
what nearly every compatible server supports, the schema goes into the prompt
(`format_instructions`), and `include_raw` hands back the model's text, its token
usage and the parse error instead of raising, so the caller decides what a malformed
answer costs (the LLM groups ask once more with the error).

`StructuredModel.ask` never raises for what the model or its endpoint did: it returns
a `ModelAnswer` whose `status` is `ok`, `invalid` (the text is not the object) or
`error` (timeout, 429, 5xx after the client's retries; refused key; unknown model).
Transport failures are retried by the OpenAI client under LangChain (`max_retries`,
exponential backoff honouring `Retry-After`); every HTTP attempt it made and retried
is reported in `ModelAnswer.retried`, seen by a transport wrapped around httpx's,
so an audit shows the 429s and timeouts a call went through, not only its outcome.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from langchain_core.exceptions import (
    ModelAuthenticationError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.runnables import Runnable
from pydantic import BaseModel, SecretStr

from shared.logging import redact_text

#: How much of an error is kept (in the answer, the stored call, the prompt).
MAX_ERROR_CHARS = 1_500

Role = Literal["system", "user", "assistant"]
CallStatus = Literal["ok", "invalid", "error"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a prompt, as stored and hashed."""

    role: Role
    content: str

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    def to_langchain(self) -> BaseMessage:
        if self.role == "system":
            return SystemMessage(self.content)
        if self.role == "assistant":
            return AIMessage(self.content)
        return HumanMessage(self.content)


def prompt_hash(model: str, messages: Sequence[ChatMessage]) -> str:
    """SHA-256 (hex) of the model and the messages as canonical JSON: sorted keys, no
    whitespace, UTF-8. Equal prompts to the same model hash equal, so a stored answer
    can be found again (a replay, a backtest) without asking twice."""
    canonical = json.dumps(
        {"model": model, "messages": [m.to_json() for m in messages]},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def format_instructions(schema: type[BaseModel]) -> str:
    """How to answer with `schema` in JSON mode: its JSON Schema, as LangChain words it."""
    return PydanticOutputParser(pydantic_object=schema).get_format_instructions()


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Where a model is and how to call it."""

    base_url: str
    model: str
    api_key: SecretStr | None = None
    timeout: float = 60.0
    max_retries: int = 2
    temperature: float = 0.2
    max_tokens: int = 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt that failed and that the client then retried."""

    error: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """What one call came to.

    Attributes:
        status: `ok` (`parsed` is the object), `invalid` (the model answered, but not
            with the object: `error` says why) or `error` (no usable answer).
        text: the model's reply as it came, when it replied.
        tokens_in, tokens_out: the usage the endpoint reported (0 when it did not).
        latency_ms: from the call to its outcome, the client's retries included.
        retried: the attempts the client retried before the last one, oldest first.
        retryable: for an `error`, whether asking again unchanged may succeed.
    """

    status: CallStatus
    parsed: BaseModel | None
    text: str | None
    error: str | None
    tokens_in: int
    tokens_out: int
    latency_ms: float
    retried: tuple[Attempt, ...] = ()
    retryable: bool = False


# ----------------------------------------------------------------------- attempts

_ATTEMPTS: contextvars.ContextVar[list[Attempt] | None] = contextvars.ContextVar(
    "llm_attempts", default=None
)


class _RecordingTransport(httpx.AsyncBaseTransport):
    """httpx's transport, noting each attempt's outcome for the call in progress.

    The OpenAI client retries inside one `ainvoke`; this is the one place that sees
    every attempt. The call's list is a context variable, so concurrent calls (the
    analysts run in parallel) each see their own attempts.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempts = _ATTEMPTS.get()
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TimeoutException as e:
            if attempts is not None:
                attempts.append(Attempt(f"timed out ({type(e).__name__})", _ms(started)))
            raise
        except httpx.TransportError as e:
            if attempts is not None:
                attempts.append(Attempt(f"connection failed ({type(e).__name__})", _ms(started)))
            raise
        if attempts is not None:
            what = "" if response.status_code < 400 else f"HTTP {response.status_code}"
            if what and response.reason_phrase:
                what += f" {response.reason_phrase}"
            attempts.append(Attempt(what, _ms(started)))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def make_http_client() -> httpx.AsyncClient:
    """The HTTP client to share between a process's models (one connection pool).

    The OpenAI client sets each request's timeout itself; this client's only job is
    to report attempts. Close it with `aclose()` when the process stops.
    """
    return httpx.AsyncClient(
        transport=_RecordingTransport(httpx.AsyncHTTPTransport()),
        timeout=httpx.Timeout(600.0),
        follow_redirects=True,
    )


# ----------------------------------------------------------------------- the model


class StructuredModel:
    """One model, asked for one pydantic object per call (see the module docstring)."""

    def __init__(self, spec: ModelSpec, *, http_client: httpx.AsyncClient | None = None) -> None:
        from langchain_openai import ChatOpenAI

        self.spec = spec
        # Field names rather than their aliases (base_url, model, api_key, timeout):
        # the same at runtime, and what the pydantic mypy plugin checks.
        self._chat: BaseChatModel = ChatOpenAI(
            openai_api_base=spec.base_url,
            model_name=spec.model,
            # Servers without authentication still need the client to send something.
            openai_api_key=spec.api_key or SecretStr("not-set"),
            request_timeout=spec.timeout,
            max_retries=spec.max_retries,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            # Chat completions is what every compatible server speaks.
            use_responses_api=False,
            http_async_client=http_client,
        )
        self._runnables: dict[type[BaseModel], Runnable[Any, Any]] = {}

    @property
    def model(self) -> str:
        return self.spec.model

    def _structured(self, schema: type[BaseModel]) -> Runnable[Any, Any]:
        runnable = self._runnables.get(schema)
        if runnable is None:
            runnable = self._chat.with_structured_output(
                schema, method="json_mode", include_raw=True
            )
            self._runnables[schema] = runnable
        return runnable

    async def ask(self, messages: Sequence[ChatMessage], schema: type[BaseModel]) -> ModelAnswer:
        """Ask once (the client retries transport failures); never raises for the
        model's or the endpoint's failures."""
        attempts: list[Attempt] = []
        token = _ATTEMPTS.set(attempts)
        started = time.perf_counter()
        try:
            result = await self._structured(schema).ainvoke([m.to_langchain() for m in messages])
        except Exception as e:  # every endpoint failure is an answer, not a crash
            retryable = e.is_retryable if isinstance(e, ModelError) else True
            return ModelAnswer(
                status="error",
                parsed=None,
                text=None,
                error=_explain(e),
                tokens_in=0,
                tokens_out=0,
                latency_ms=_ms(started),
                retried=tuple(attempts[:-1]),
                retryable=retryable,
            )
        finally:
            _ATTEMPTS.reset(token)
        raw = result.get("raw")
        text = raw.text if isinstance(raw, BaseMessage) else None
        tokens_in, tokens_out = _usage(raw)
        parsed = result.get("parsed")
        if isinstance(parsed, schema):
            status: CallStatus = "ok"
            error = None
        else:
            status = "invalid"
            parsed = None
            error = describe(result.get("parsing_error")) or "the reply holds no JSON object"
        return ModelAnswer(
            status=status,
            parsed=parsed,
            text=text,
            error=error,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=_ms(started),
            retried=tuple(attempts[:-1]),
        )


def _usage(raw: Any) -> tuple[int, int]:
    usage = getattr(raw, "usage_metadata", None) or {}
    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)


def _explain(e: BaseException) -> str:
    what = describe(e)
    if isinstance(e, ModelAuthenticationError | ModelPermissionDeniedError):
        return f"the model endpoint refused the API key ({what})"
    if isinstance(e, ModelNotFoundError):
        return f"the model endpoint does not know this model ({what})"
    if isinstance(e, ModelInvalidRequestError):
        return f"the model endpoint refused the request ({what})"
    return f"the model endpoint failed ({what})"


def describe(error: BaseException | None) -> str:
    """An error as one bounded line, secrets scrubbed, fit to show a model or a person."""
    if error is None:
        return ""
    text = str(error)
    # LangChain appends a troubleshooting link; the reader needs only the error.
    text = text.split("\nFor troubleshooting, visit:")[0].strip()
    text = redact_text(f"{type(error).__name__}: {text}" if text else type(error).__name__)
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " [...]"
