"""Which tokenizer and framing rules apply to a model.

OpenAI models are counted exactly: the model's own BPE vocabulary plus the chat framing and
tool-definition rules OpenAI published in its cookbook ("How to count tokens with tiktoken").

Other providers do not publish their tokenizers, so their counts are estimates, always flagged
``approximate``. The method (documented in the README, and in every output's ``method``):

* Anthropic (``claude*``): cl100k_base count of all text x 1.15, rounded up per category;
  3 tokens of framing per message, 3 to prime the reply; tool definitions counted as their JSON.
  Claude's tokenizer yields more tokens than cl100k_base for the same English text, so the
  estimate leans high, which is the safe side for budgets.
* Google (``gemini*``, ``gemma*``): o200k_base count, same framing.
* Everything else (Llama, Mistral, Qwen, DeepSeek, self-hosted): cl100k_base count, same framing.

These heuristics are not calibrated against the providers' tokenizers; what thrifty bills is
always the usage the provider reports, never this estimate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from thrifty.core.tokens.encodings import EncodingName

__all__ = ["CountingScheme", "ToolConstants", "normalise_model_name", "scheme_for"]

Family = Literal["openai", "anthropic", "google", "other"]


@dataclass(frozen=True, slots=True)
class ToolConstants:
    """The cookbook's per-model constants for tool definitions."""

    func_init: int
    prop_init: int
    prop_key: int
    enum_init: int
    enum_item: int
    func_end: int


@dataclass(frozen=True, slots=True)
class CountingScheme:
    family: Family
    encoding: EncodingName
    exact: bool
    tokens_per_message: int = 3
    tokens_per_name: int = 1
    reply_priming: int = 3
    tools: ToolConstants | None = None
    scale: Decimal = Decimal(1)
    method: str = field(init=False, compare=False)
    """How the count is made, in words; shown with every count."""

    def __post_init__(self) -> None:
        if self.exact:
            method = f"{self.encoding} with OpenAI's published chat framing rules (exact)"
        else:
            scale = f" x {self.scale}" if self.scale != 1 else ""
            method = (
                f"estimate for {_FAMILY_NAMES[self.family]}: {self.encoding}{scale} plus 3 tokens of framing a message "
                "(approximate: this provider does not publish its tokenizer)"
            )
        object.__setattr__(self, "method", method)


_FAMILY_NAMES: dict[str, str] = {
    "openai": "an OpenAI model",
    "anthropic": "an Anthropic model",
    "google": "a Google model",
    "other": "a model with an unpublished tokenizer",
}

_O200K_TOOLS = ToolConstants(func_init=7, prop_init=3, prop_key=3, enum_init=-3, enum_item=3, func_end=12)
_CL100K_TOOLS = ToolConstants(func_init=10, prop_init=3, prop_key=3, enum_init=-3, enum_item=3, func_end=12)

_OPENAI_O200K = re.compile(r"^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[134](-|$)|codex-mini|computer-use)")
_OPENAI_CL100K = re.compile(r"^(gpt-4|gpt-3\.5|text-embedding-3|text-embedding-ada-002)")
_PROVIDER_PREFIX = re.compile(r"^(openai|azure|anthropic|google|vertex_ai|bedrock|gemini)/")
_FINE_TUNED = re.compile(r"^ft:([^:]+):")

_SCHEMES: dict[str, CountingScheme] = {
    "o200k": CountingScheme("openai", "o200k_base", exact=True, tools=_O200K_TOOLS),
    "cl100k": CountingScheme("openai", "cl100k_base", exact=True, tools=_CL100K_TOOLS),
    "anthropic": CountingScheme("anthropic", "cl100k_base", exact=False, scale=Decimal("1.15")),
    "google": CountingScheme("google", "o200k_base", exact=False),
    "other": CountingScheme("other", "cl100k_base", exact=False),
}


def normalise_model_name(model: str) -> str:
    """``openai/ft:gpt-4o-mini-2024-07-18:acme::abc`` -> ``gpt-4o-mini-2024-07-18``."""
    name = _PROVIDER_PREFIX.sub("", model.strip().lower())
    fine_tuned = _FINE_TUNED.match(name)
    return fine_tuned.group(1) if fine_tuned else name


def scheme_for(model: str) -> CountingScheme:
    name = normalise_model_name(model)
    if _OPENAI_O200K.match(name):
        return _SCHEMES["o200k"]
    if _OPENAI_CL100K.match(name):
        return _SCHEMES["cl100k"]
    if name.startswith("claude"):
        return _SCHEMES["anthropic"]
    if name.startswith(("gemini", "gemma")):
        return _SCHEMES["google"]
    return _SCHEMES["other"]
