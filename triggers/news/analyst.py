"""Ask a language model for a structured verdict on one article, through LangChain.

Any OpenAI-compatible endpoint works (OpenAI, vLLM, Ollama, llama.cpp, LM Studio,
OpenRouter...). The verdict is requested with
`with_structured_output(Verdict, method="json_mode", include_raw=True)`:

- JSON mode sends only `response_format: {"type": "json_object"}`, which nearly every
  compatible server supports (or ignores), and puts the schema in the prompt. The
  `json_schema` method needs the server to implement OpenAI's structured outputs,
  and in strict mode refuses schemas with bounds such as `sentiment` in -1..1;
  `function_calling` needs tool-calling support, which many local models lack.
- `include_raw=True` hands back the model's raw reply and the parse error instead
  of raising, so a malformed answer is shown to the model with the error and asked
  for again, a bounded number of times; the bounds are checked by pydantic here.

Transport failures (timeouts, 429, 5xx) are retried by the OpenAI client itself
(`max_retries`, honouring Retry-After); what is left is raised as `LLMUnavailable`
for the caller to retry at its next poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from langchain_core.exceptions import (
    ContextOverflowError,
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
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from shared.events import Direction
from shared.logging import redact_text
from triggers.news.feeds import Article

#: Article text beyond this is cut before it is sent: the title and the first
#: paragraphs carry the news, and a bounded prompt cannot overflow a small model.
MAX_ARTICLE_CHARS = 6_000
#: How much of a parse error is shown back to the model.
MAX_ERROR_CHARS = 1_500


class Urgency(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


Symbol = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, min_length=1, max_length=32)
]


class Verdict(BaseModel):
    """Your verdict on one news article."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sentiment: float = Field(
        ge=-1, le=1, description="-1 very bearish .. 0 neutral .. 1 very bullish"
    )
    affected_symbols: list[Symbol] = Field(
        max_length=20, description="The tradable assets the article is about, most affected first."
    )
    urgency: Urgency = Field(
        description="high: the market reacts within minutes; medium: within hours; low: later."
    )
    direction: Direction = Field(
        description="long: prices likely to rise; short: likely to fall; neutral: unclear."
    )
    strength: float = Field(ge=0, le=1, description="How strong and reliable the signal is.")
    analysis: str = Field(
        min_length=1, max_length=4_000, description="One paragraph explaining the verdict."
    )

    @field_validator("urgency", "direction", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("affected_symbols")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


@dataclass(frozen=True, slots=True)
class AnalysisFailed:
    """The model gave no usable verdict for this article; it is dropped."""

    reason: str
    attempts: int


class LLMUnavailable(Exception):
    """The model could not be asked (timeout, rate limit, server error, bad key...).

    Attributes:
        retryable: whether the same request may succeed later unchanged (a timeout,
            429, 5xx, a network error), as opposed to a configuration problem (401,
            403, unknown model) that needs the operator.
        article_specific: the endpoint refused this request (HTTP 400), which may be
            this article's fault: the caller can go on with the next one.
    """

    def __init__(self, reason: str, *, retryable: bool, article_specific: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.article_specific = article_specific


SYSTEM_PROMPT = """\
You are a markets news analyst for an automated trading system. You read one news \
article and judge how it is likely to move the prices of the assets it concerns.

Reply with one JSON object and nothing else: no prose, no code fence.
{format_instructions}

- sentiment: -1 (very bearish) to 1 (very bullish) for the affected assets; 0 when \
neutral or unclear.
- affected_symbols: the tradable assets the article is about, most affected first, \
{symbol_hint}; [] when it concerns none.
- direction: "long" if their prices are likely to rise, "short" if likely to fall, \
"neutral" otherwise.
- strength: 0 to 1, how strong and how reliable the signal is.
- urgency: "high" if the market will react within minutes, "medium" within hours, \
"low" otherwise.
- analysis: one paragraph explaining the verdict."""

CORRECTION_PROMPT = """\
That reply could not be used: {error}
Reply again with only the JSON object, matching the schema."""


def build_chat_model(
    *,
    base_url: str,
    model: str,
    api_key: SecretStr | None,
    timeout: float,
    max_retries: int,
) -> BaseChatModel:
    """LangChain's OpenAI chat model for any OpenAI-compatible endpoint."""
    from langchain_openai import ChatOpenAI

    # Field names rather than their aliases (base_url, model, api_key, timeout): the
    # same at runtime (populate_by_name), and what the pydantic mypy plugin checks.
    return ChatOpenAI(
        openai_api_base=base_url,
        model_name=model,
        # Servers without authentication still need the client to send something.
        openai_api_key=api_key or SecretStr("not-set"),
        request_timeout=timeout,
        max_retries=max_retries,
        temperature=0,
        # Chat completions is what every compatible server speaks; the Responses API is not.
        use_responses_api=False,
    )


class Analyst:
    """Turn an article into a `Verdict`, or say why it could not.

    Args:
        model: a LangChain chat model (see `build_chat_model`).
        parse_retries: how many more times to ask after a malformed answer.
        symbols: the symbols the trading system uses, as a hint to the model.
        max_chars: article text beyond this is cut.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        parse_retries: int = 2,
        symbols: Sequence[str] = (),
        max_chars: int = MAX_ARTICLE_CHARS,
    ) -> None:
        if parse_retries < 0:
            raise ValueError(f"parse_retries must be 0 or more, got {parse_retries}")
        self.parse_retries = parse_retries
        self.max_chars = max_chars
        self._structured: Runnable[Any, Any] = model.with_structured_output(
            Verdict, method="json_mode", include_raw=True
        )
        hint = (
            f"written exactly as one of {', '.join(symbols)} when they apply"
            if symbols
            else "as ticker symbols (e.g. BTC, ETH, AAPL, EUR/USD)"
        )
        instructions = PydanticOutputParser(pydantic_object=Verdict).get_format_instructions()
        self._system = SYSTEM_PROMPT.format(format_instructions=instructions, symbol_hint=hint)

    def messages(self, article: Article) -> list[BaseMessage]:
        """The prompt for `article`."""
        text = article.text
        if len(text) > self.max_chars:
            text = text[: self.max_chars].rsplit(" ", 1)[0] + " [...]"
        published = article.published.isoformat() if article.published else "unknown"
        body = (
            f"Title: {article.title or '(untitled)'}\n"
            f"Published: {published}\n"
            f"Source: {article.feed}\n"
            f"Link: {article.link or 'none'}\n\n"
            f"{text or '(no text; judge from the title)'}"
        )
        return [SystemMessage(self._system), HumanMessage(body)]

    async def analyze(self, article: Article) -> Verdict | AnalysisFailed:
        """Ask the model, re-asking with the error after a malformed answer.

        Raises:
            LLMUnavailable: the model could not be asked; try this article again later.
        """
        messages = self.messages(article)
        attempts = self.parse_retries + 1
        reason = ""
        for _ in range(attempts):
            try:
                result = await self._structured.ainvoke(messages)
            except ModelError as e:
                if _context_overflow(e):
                    # Deterministic for this article and model: asking again cannot help.
                    return AnalysisFailed("the article is too long for the model's context", 1)
                raise _unavailable(e) from e
            except Exception as e:
                # A reply LangChain could not even read as a chat completion.
                raise LLMUnavailable(
                    f"unexpected answer from the model endpoint: {_describe(e)}",
                    retryable=True,
                ) from e
            parsed = result.get("parsed")
            if isinstance(parsed, Verdict):
                return parsed
            raw = result.get("raw")
            reason = _describe(result.get("parsing_error")) or "no JSON object in the reply"
            reply = raw.text if isinstance(raw, BaseMessage) else ""
            messages = [
                *messages,
                AIMessage(reply or "(empty reply)"),
                HumanMessage(CORRECTION_PROMPT.format(error=reason)),
            ]
        return AnalysisFailed(f"malformed answer {attempts} times; last: {reason}", attempts)


def _context_overflow(e: ModelError) -> bool:
    if isinstance(e, ContextOverflowError):
        return True
    # LangChain looks for the code in the error's text, which newer OpenAI clients no
    # longer put there; the provider's error code is on the exception.
    return isinstance(e, ModelInvalidRequestError) and (
        getattr(e, "code", None) == "context_length_exceeded"
    )


def _unavailable(e: ModelError) -> LLMUnavailable:
    what = _describe(e)
    if isinstance(e, ModelAuthenticationError | ModelPermissionDeniedError):
        return LLMUnavailable(
            f"the model endpoint refused the API key ({what}); check ATS_LLM_API_KEY",
            retryable=False,
        )
    if isinstance(e, ModelNotFoundError):
        return LLMUnavailable(
            f"the model endpoint does not know this model ({what}); check ATS_LLM_MODEL",
            retryable=False,
        )
    if isinstance(e, ModelInvalidRequestError):
        return LLMUnavailable(
            f"the model endpoint refused the request ({what})",
            retryable=False,
            article_specific=True,
        )
    return LLMUnavailable(
        f"the model endpoint failed ({what}); retrying at the next poll",
        retryable=e.is_retryable,
    )


def _describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error)
    # LangChain appends a troubleshooting link; the model needs only the error.
    text = text.split("\nFor troubleshooting, visit:")[0].strip()
    text = redact_text(f"{type(error).__name__}: {text}" if text else type(error).__name__)
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " [...]"
