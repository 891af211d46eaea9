"""Invalid requests get each provider's 400 (or 401/404/413) shape with a clear message; no input
ever gets a 500."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from thrifty.core.tokens.counter import TokenCounter
from thrifty.simulator import BackgroundSimulator, SimulatorApp, SimulatorConfig, create_app

GPT = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-6"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="module")
def server(counter: TokenCounter) -> Iterator[BackgroundSimulator]:
    config = SimulatorConfig(max_body_bytes=64 * 1024)
    with BackgroundSimulator(config, counter=counter) as running:
        yield running


def send(
    url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request(method, path, body=body, headers={"content-type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data)


def openai_error(url: str, body: bytes | dict[str, Any], path: str = "/v1/chat/completions") -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, payload = send(url, "POST", path, raw)
    assert status == 400, payload
    assert headers["x-request-id"].startswith("req_")
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    return dict(error)


def anthropic_error(url: str, body: bytes | dict[str, Any], path: str = "/v1/messages") -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, payload = send(url, "POST", path, raw, {"anthropic-version": "2023-06-01"})
    assert status == 400, payload
    assert headers["request-id"].startswith("req_")
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["request_id"] == headers["request-id"]
    return dict(payload["error"])


def test_openai_bad_requests(server: BackgroundSimulator) -> None:
    url = server.url
    assert "could not parse the JSON body" in openai_error(url, b"{not json")["message"]
    assert "JSON object" in openai_error(url, b"[1, 2]")["message"]
    assert openai_error(url, {"messages": HI})["param"] == "model"
    assert openai_error(url, {"model": GPT})["param"] == "messages"
    assert openai_error(url, {"model": GPT, "messages": []})["param"] == "messages"
    assert openai_error(url, {"model": GPT, "messages": "hi"})["message"] == "messages: expected an array, got a string"
    assert openai_error(url, {"model": 5, "messages": HI})["param"] == "model"
    assert openai_error(url, {"model": GPT, "messages": [{"role": "robot", "content": "x"}]})["param"] == (
        "messages[0].role"
    )
    assert openai_error(url, {"model": GPT, "messages": HI, "max_tokens": "ten"})["param"] == "max_tokens"
    assert openai_error(url, {"model": GPT, "messages": HI, "max_tokens": 0})["param"] == "max_tokens"
    assert openai_error(url, {"model": GPT, "messages": HI, "temperature": 3})["param"] == "temperature"
    assert openai_error(url, {"model": GPT, "messages": HI, "n": 0})["param"] == "n"
    assert openai_error(url, {"model": GPT, "messages": HI, "stop": ["a", "b", "c", "d", "e"]})["param"] == "stop"
    assert openai_error(url, {"model": GPT, "messages": HI, "stream_options": {"include_usage": True}})["param"] == (
        "stream_options"
    )
    assert openai_error(url, {"model": GPT, "messages": HI, "tool_choice": "required"})["param"] == "tool_choice"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    named = {"type": "function", "function": {"name": "g"}}
    assert (
        "no function named"
        in openai_error(url, {"model": GPT, "messages": HI, "tools": tools, "tool_choice": named})["message"]
    )
    assert openai_error(url, {"model": GPT, "messages": HI, "response_format": {"type": "xml"}})["param"] == (
        "response_format.type"
    )
    assert openai_error(url, {"model": "text-embedding-3-small", "input": ""}, "/v1/embeddings")["param"] == "input"
    assert openai_error(url, {"model": "text-embedding-3-small", "input": [1.5]}, "/v1/embeddings")["param"] == "input"
    assert openai_error(url, {"input": "x"}, "/v1/embeddings")["param"] == "model"
    big = "x " * 9000
    assert (
        "maximum context length"
        in openai_error(url, {"model": "text-embedding-3-small", "input": big}, "/v1/embeddings")["message"]
    )
    assert (
        openai_error(url, {"input_file_id": "file-x", "endpoint": "/v1/x", "completion_window": "24h"}, "/v1/batches")[
            "param"
        ]
        == "endpoint"
    )


def test_anthropic_bad_requests(server: BackgroundSimulator) -> None:
    url = server.url
    assert "parsing the body" in anthropic_error(url, b"{oops")["message"]
    assert anthropic_error(url, {"model": CLAUDE, "messages": HI})["message"] == "max_tokens: is required"
    assert anthropic_error(url, {"max_tokens": 5, "messages": HI})["message"].startswith("model:")
    assert anthropic_error(url, {"model": CLAUDE, "max_tokens": 5})["message"].startswith("messages:")
    assert (
        "role"
        in anthropic_error(url, {"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]})[
            "message"
        ]
    )
    assert anthropic_error(url, {"model": CLAUDE, "max_tokens": 5, "messages": HI, "stop_sequences": "x"})["message"]
    assert (
        "tool_choice"
        in anthropic_error(url, {"model": CLAUDE, "max_tokens": 5, "messages": HI, "tool_choice": {"type": "any"}})[
            "message"
        ]
    )
    thinking = {"type": "enabled", "budget_tokens": 2000}
    assert (
        "budget_tokens"
        in anthropic_error(url, {"model": CLAUDE, "max_tokens": 1000, "messages": HI, "thinking": thinking})["message"]
    )
    bad_cache = [{"type": "text", "text": "x", "cache_control": {"type": "persistent"}}]
    assert (
        "ephemeral"
        in anthropic_error(url, {"model": CLAUDE, "max_tokens": 5, "messages": HI, "system": bad_cache})["message"]
    )
    assert anthropic_error(url, {"messages": HI}, "/v1/messages/count_tokens")["message"].startswith("model:")


def test_sdks_surface_bad_requests(server: BackgroundSimulator) -> None:
    oai = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="messages"):
        oai.chat.completions.create(model=GPT, messages=[])
    ant = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        ant.messages.create(model=CLAUDE, max_tokens=5, messages=[])


def test_unknown_paths_and_methods(server: BackgroundSimulator) -> None:
    status, _, payload = send(server.url, "POST", "/v1/nothing-here", b"{}")
    assert status == 404
    assert payload["error"]["message"] == "Invalid URL (POST /v1/nothing-here)"
    status, _, payload = send(server.url, "GET", "/v1/chat/completions")
    assert status == 404
    assert "error" in payload
    status, headers, payload = send(server.url, "GET", "/v1/messages")
    assert status == 404
    assert payload["error"]["type"] == "not_found_error"
    assert "request-id" in headers
    status, _, payload = send(server.url, "POST", "/v2/complete", b"{}", {"anthropic-version": "2023-06-01"})
    assert status == 404
    assert payload["type"] == "error"


def test_body_too_large(server: BackgroundSimulator) -> None:
    huge = json.dumps({"model": GPT, "messages": [{"role": "user", "content": "x" * 70_000}]}).encode()
    status, _, payload = send(server.url, "POST", "/v1/chat/completions", huge)
    assert status == 413
    assert "larger than the limit" in payload["error"]["message"]
    status, _, payload = send(server.url, "POST", "/v1/messages", huge)
    assert status == 413
    assert payload["error"]["type"] == "request_too_large"


def test_api_keys(counter: TokenCounter) -> None:
    with BackgroundSimulator(SimulatorConfig(api_keys=("sk-right",)), counter=counter) as guarded:
        wrong = openai.OpenAI(base_url=guarded.openai_base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            wrong.chat.completions.create(model=GPT, messages=HI)
        assert caught.value.code == "invalid_api_key"
        right = openai.OpenAI(base_url=guarded.openai_base_url, api_key="sk-right", max_retries=0)
        assert right.chat.completions.create(model=GPT, messages=HI).choices
        bad = anthropic.Anthropic(base_url=guarded.anthropic_base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.create(model=CLAUDE, max_tokens=5, messages=HI)
        good = anthropic.Anthropic(base_url=guarded.anthropic_base_url, api_key="sk-right", max_retries=0)
        assert good.messages.create(model=CLAUDE, max_tokens=5, messages=HI).content


# --- no input gets a 500 (in-process, through the ASGI interface) ---------------------------------


@pytest.fixture(scope="module")
def app(counter: TokenCounter) -> SimulatorApp:
    return create_app(counter=counter)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


def asgi(loop: asyncio.AbstractEventLoop, app: SimulatorApp, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def deliver(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    loop.run_until_complete(app(scope, receive, deliver))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually (nine times in ten) a valid value, else any JSON at all."""
    return st.integers(0, 9).flatmap(lambda roll: json_values if roll == 9 else valid)


cache_control = mostly(st.sampled_from([{"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}]))
texts = st.text(max_size=30) | st.sampled_from(["call get_weather now", "search_docs please"])
parts = mostly(
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("text"), "text": mostly(texts)}, optional={"cache_control": cache_control}
        ),
        st.fixed_dictionaries(
            {"type": st.just("tool_result"), "tool_use_id": st.just("t1"), "content": mostly(texts)},
            optional={"cache_control": cache_control},
        ),
        st.fixed_dictionaries(
            {"type": st.just("tool_use"), "id": st.just("t1"), "name": st.just("get_weather"), "input": json_values}
        ),
        st.fixed_dictionaries({"type": st.just("image_url"), "image_url": mostly(st.just({"url": "https://x/y.png"}))}),
    )
)
messages = mostly(
    st.lists(
        st.fixed_dictionaries(
            {
                "role": mostly(st.sampled_from(["user", "assistant"])),
                "content": mostly(texts | st.lists(parts, max_size=3)),
            }
        ),
        min_size=1,
        max_size=3,
    )
)
schemas = mostly(
    st.fixed_dictionaries(
        {
            "type": st.just("object"),
            "properties": st.dictionaries(st.sampled_from(["a", "b"]), json_values, max_size=2),
        },
        optional={"required": mostly(st.just(["a"])), "$defs": json_values},
    )
)
openai_tools = mostly(
    st.lists(
        st.fixed_dictionaries(
            {
                "type": st.just("function"),
                "function": st.fixed_dictionaries(
                    {"name": st.sampled_from(["get_weather", "search_docs"]), "parameters": schemas}
                ),
            }
        ),
        max_size=2,
    )
)
anthropic_tools = mostly(
    st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(["get_weather", "search_docs"]), "input_schema": schemas},
            optional={"cache_control": cache_control},
        ),
        max_size=2,
    )
)
openai_bodies = st.fixed_dictionaries(
    {"model": mostly(st.sampled_from([GPT, "o3", "gpt-4"])), "messages": messages},
    optional={
        "max_tokens": mostly(st.integers(1, 60)),
        "stream": mostly(st.booleans()),
        "stream_options": mostly(st.just({"include_usage": True})),
        "n": mostly(st.integers(1, 3)),
        "stop": mostly(st.sampled_from([".", " the", ["a", "b"]])),
        "tools": openai_tools,
        "tool_choice": mostly(
            st.sampled_from(["auto", "none", "required", {"type": "function", "function": {"name": "get_weather"}}])
        ),
        "response_format": mostly(
            st.sampled_from(
                [
                    {"type": "json_object"},
                    {"type": "text"},
                    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
                ]
            )
        ),
    },
)
anthropic_bodies = st.fixed_dictionaries(
    {
        "model": mostly(st.sampled_from([CLAUDE, "claude-opus-4-1"])),
        "messages": messages,
        "max_tokens": mostly(st.integers(1, 60)),
    },
    optional={
        "stream": mostly(st.booleans()),
        "system": mostly(texts | st.lists(parts, max_size=2)),
        "stop_sequences": mostly(st.lists(st.sampled_from([".", " the"]), max_size=2)),
        "tools": anthropic_tools,
        "tool_choice": mostly(
            st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "get_weather"}])
        ),
        "thinking": mostly(st.sampled_from([{"type": "adaptive"}, {"type": "enabled", "budget_tokens": 1024}])),
        "cache_control": cache_control,
    },
)
embedding_bodies = st.fixed_dictionaries(
    {"model": mostly(st.sampled_from(["text-embedding-3-small", "text-embedding-ada-002"]))},
    optional={
        "input": mostly(
            st.text(min_size=1, max_size=20)
            | st.lists(st.text(min_size=1, max_size=9), min_size=1, max_size=3)
            | st.lists(st.integers(0, 100), min_size=1, max_size=3)
        ),
        "dimensions": mostly(st.integers(1, 64)),
        "encoding_format": mostly(st.sampled_from(["float", "base64"])),
    },
)
requests = st.one_of(
    st.tuples(st.just("/v1/chat/completions"), openai_bodies),
    st.tuples(st.just("/v1/messages"), anthropic_bodies),
    st.tuples(st.just("/v1/messages/count_tokens"), anthropic_bodies),
    st.tuples(st.just("/v1/embeddings"), embedding_bodies),
    st.tuples(st.just("/v1/batches"), st.dictionaries(st.sampled_from(["input_file_id", "endpoint"]), json_values)),
)
paths = st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/embeddings"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests)
def test_no_request_gets_a_500(app: SimulatorApp, loop: asyncio.AbstractEventLoop, request: tuple[str, Any]) -> None:
    path, body = request
    status, payload = asgi(loop, app, "POST", path, json.dumps(body).encode())
    event(f"{path} {status}")
    assert status in (200, 400, 404), payload
    if status != 200:
        json.loads(payload)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths, body=st.binary(max_size=40))
def test_no_bytes_get_a_500(app: SimulatorApp, loop: asyncio.AbstractEventLoop, path: str, body: bytes) -> None:
    status, _ = asgi(loop, app, "POST", path, body)
    assert status in (200, 400, 404)
