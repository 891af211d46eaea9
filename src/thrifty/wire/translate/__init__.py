"""Translation between the OpenAI Chat Completions and Anthropic Messages wire formats.

Pure functions and small stateful stream translators: no I/O. The gateway uses them when a
client calls a model of one provider through the other provider's API.
"""

from thrifty.wire.translate._common import ResponseShapeError
from thrifty.wire.translate.errors import anthropic_error_to_openai, openai_error_to_anthropic
from thrifty.wire.translate.requests import (
    RequestTranslation,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)
from thrifty.wire.translate.responses import anthropic_to_openai_response, openai_to_anthropic_response
from thrifty.wire.translate.streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "RequestTranslation",
    "ResponseShapeError",
    "anthropic_error_to_openai",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "openai_error_to_anthropic",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
]
