"""Whatever a client sends, the gateway answers in the client's error shape: never a 500. Every
optional field of both APIs is posted with values of every type and any nesting depth; a value of
the wrong type, or nesting past the gateway's limit (128 levels), is a 400 naming the field, before
any upstream call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gateway import RunningGateway, running_gateway

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# What each optional field takes, from the APIs' references (OpenAI Chat Completions, Anthropic
# Messages), written out here apart from the gateway's own tables. null is always allowed (absent).
STRING, BOOLEAN, INTEGER, FLOAT, ARRAY, OBJECT = "string", "boolean", "integer", "float", "array", "object"
NUMBER = frozenset({INTEGER, FLOAT})
OPENAI_FIELDS: dict[str, frozenset[str]] = {
    "audio": frozenset({OBJECT}),
    "frequency_penalty": NUMBER,
    "function_call": frozenset({STRING, OBJECT}),
    "functions": frozenset({ARRAY}),
    "logit_bias": frozenset({OBJECT}),
    "logprobs": frozenset({BOOLEAN}),
    "max_completion_tokens": frozenset({INTEGER}),
    "max_tokens": frozenset({INTEGER}),
    "metadata": frozenset({OBJECT}),
    "modalities": frozenset({ARRAY}),
    "moderation": frozenset({OBJECT}),
    "n": frozenset({INTEGER}),
    "parallel_tool_calls": frozenset({BOOLEAN}),
    "prediction": frozenset({OBJECT}),
    "presence_penalty": NUMBER,
    "prompt_cache_key": frozenset({STRING}),
    "prompt_cache_options": frozenset({OBJECT}),
    "prompt_cache_retention": frozenset({STRING}),
    "reasoning_effort": frozenset({STRING}),
    "response_format": frozenset({OBJECT}),
    "safety_identifier": frozenset({STRING}),
    "seed": frozenset({INTEGER}),
    "service_tier": frozenset({STRING}),
    "stop": frozenset({STRING, ARRAY}),
    "store": frozenset({BOOLEAN}),
    "stream": frozenset({BOOLEAN}),
    "stream_options": frozenset({OBJECT}),
    "temperature": NUMBER,
    "tool_choice": frozenset({STRING, OBJECT}),
    "tools": frozenset({ARRAY}),
    "top_logprobs": frozenset({INTEGER}),
    "top_p": NUMBER,
    "user": frozenset({STRING}),
    "verbosity": frozenset({STRING}),
    "web_search_options": frozenset({OBJECT}),
}
ANTHROPIC_FIELDS: dict[str, frozenset[str]] = {
    "cache_control": frozenset({OBJECT}),
    "container": frozenset({STRING, OBJECT}),
    "context_management": frozenset({OBJECT}),
    "diagnostics": frozenset({OBJECT}),
    "inference_geo": frozenset({STRING}),
    "mcp_servers": frozenset({ARRAY}),
    "metadata": frozenset({OBJECT}),
    "output_config": frozenset({OBJECT}),
    "service_tier": frozenset({STRING}),
    "speed": frozenset({STRING}),
    "stop_sequences": frozenset({ARRAY}),
    "stream": frozenset({BOOLEAN}),
    "system": frozenset({STRING, ARRAY}),
    "temperature": NUMBER,
    "thinking": frozenset({OBJECT}),
    "tool_choice": frozenset({OBJECT}),
    "tools": frozenset({ARRAY}),
    "top_k": frozenset({INTEGER}),
    "top_p": NUMBER,
    "user_profile_id": frozenset({STRING}),
}
OF_TYPE = {
    STRING: st.text(max_size=10),
    BOOLEAN: st.booleans(),
    INTEGER: st.integers(-(2**40), 2**40),
    FLOAT: st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    ARRAY: st.lists(json_values, max_size=3),
    OBJECT: st.dictionaries(st.text(max_size=8), json_values, max_size=3),
}
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "function", "wizard"]) | json_values
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles, "content": json_values | st.text(max_size=30)}, optional={"name": json_values}
    ),
    max_size=3,
)
near_valid = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "claude-haiku-4-5"]) | json_values, "messages": messages | json_values},
    optional={
        "max_tokens": json_values,
        "stream": json_values,
        "tools": json_values,
        "system": json_values,
        "temperature": json_values,
        **dict.fromkeys(sorted(set(OPENAI_FIELDS) | set(ANTHROPIC_FIELDS)), json_values),
    },
)
HELLO: Any = [{"role": "user", "content": "hi"}]
VALID = {"messages": HELLO, "max_tokens": 5}


@pytest.fixture(scope="module")
def gateway(simulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    with running_gateway(simulator_url, home) as running:
        yield running


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=near_valid | json_values, path=st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/embeddings"]))
def test_no_input_gets_a_server_error(gateway: RunningGateway, body: Any, path: str) -> None:
    response = httpx2.post(
        f"{gateway.url}{path}",
        content=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code < 500 or response.status_code in (502, 503), response.text
    if response.status_code >= 400:
        payload = response.json()
        if path == "/v1/messages":
            assert payload["type"] == "error" and payload["error"]["message"]
        else:
            assert payload["error"]["message"]
    assert "Traceback" not in response.text


def upstream_calls(gateway: RunningGateway) -> int:
    return int(httpx2.get(f"{gateway.simulator_url}/_simulator/stats").json()["total"])


def post(gateway: RunningGateway, path: str, raw: bytes) -> httpx2.Response:
    return httpx2.post(f"{gateway.url}{path}", content=raw, headers={"content-type": "application/json"}, timeout=30)


def refusal(response: httpx2.Response, path: str) -> str:
    """The message of a 400 in the error shape of ``path``'s API."""
    assert response.status_code == 400, response.text
    payload = response.json()
    if path == "/v1/messages":
        assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    else:
        assert payload["error"]["type"] == "invalid_request_error"
    message: str = payload["error"]["message"]
    assert message
    return message


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    return {float: FLOAT, str: STRING, list: ARRAY, dict: OBJECT}[type(value)]


def nested(depth: int, brackets: str) -> str:
    """JSON text of ``depth`` arrays (or objects) one inside the other."""
    if brackets == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# Where a deep value goes: the body (its slot a JSON null to replace), the top-level field it is
# in, how many objects and arrays enclose the slot, and whether the slot takes any JSON (then a
# value within the limit is served).
DEEP = "__deep__"
PLACES: dict[str, list[tuple[dict[str, Any], str, int, bool]]] = {
    "/v1/chat/completions": [
        ({"extra_field": DEEP}, "extra_field", 1, True),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": DEEP}}},
                    }
                ]
            },
            "tools",
            6,
            True,
        ),
        ({"metadata": {"k": DEEP}}, "metadata", 2, False),
        ({"messages": [{"role": "user", "content": DEEP}]}, "messages", 3, False),
        ({"tool_choice": DEEP}, "tool_choice", 1, False),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": DEEP}}},
            "response_format",
            3,
            False,
        ),
    ],
    "/v1/messages": [
        ({"extra_field": DEEP}, "extra_field", 1, True),
        ({"tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"x": DEEP}}}]}, "tools", 5, True),
        (
            {
                "messages": [
                    {"role": "user", "content": "go"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"x": DEEP}}],
                    },
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]},
                ],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            },
            "messages",
            6,
            True,
        ),
        ({"metadata": {"user_id": "u", "x": DEEP}}, "metadata", 2, False),
        ({"output_config": DEEP}, "output_config", 1, False),
        ({"system": DEEP}, "system", 1, False),
    ],
}
LIMIT = 128


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(sorted(PLACES)),
    place=st.integers(0, 5),
    depth=st.integers(1, 140) | st.integers(120, 135) | st.integers(140, 2000),
    brackets=st.sampled_from(["[", "{"]),
    same_format=st.booleans(),
    cacheable=st.booleans(),
)
def test_nesting_of_any_depth_in_any_field_is_a_400_naming_it_past_the_limit(
    gateway: RunningGateway, path: str, place: int, depth: int, brackets: str, same_format: bool, cacheable: bool
) -> None:
    """Past 128 levels anywhere, a 400 naming the field and no upstream call, to either provider
    format (translated bodies and cache keys wrap a body deeper: they must still encode); within
    it, a slot that takes any JSON is served."""
    fields, field, enclosing, takes_anything = PLACES[path][place]
    openai_path = path == "/v1/chat/completions"
    model = "gpt-4o-mini" if openai_path == same_format else "claude-haiku-4-5"
    document = {**VALID, "model": model, **({"temperature": 0} if cacheable else {}), **fields}
    raw = orjson.dumps(document).decode().replace(f'"{DEEP}"', nested(depth, brackets)).encode()
    before = upstream_calls(gateway)
    response = post(gateway, path, raw)
    assert response.status_code < 500, response.text
    if enclosing + depth > LIMIT:
        message = refusal(response, path)
        assert message.startswith(field) and f"nested deeper than {LIMIT} levels" in message, message
        assert upstream_calls(gateway) == before
    elif takes_anything:
        assert response.status_code == 200, response.text
    elif response.status_code != 200:  # a type the field does not take (or one a translation drops)
        refusal(response, path)


@pytest.mark.parametrize("depth", [127, 129, 300, 5000])
def test_tool_call_arguments_nested_at_any_depth_are_served_to_either_format(
    gateway: RunningGateway, depth: int
) -> None:
    """Arguments are JSON text: however deep, one string. Translated for Claude they would become
    an object; one too deep to encode stays text (``_raw``), as invalid JSON arguments do."""
    arguments = '{"a":' * depth + "1" + "}" * depth
    for model in ("gpt-4o-mini", "claude-haiku-4-5"):
        body = {
            "model": model,
            "max_tokens": 5,
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
            ],
        }
        response = post(gateway, "/v1/chat/completions", orjson.dumps(body))
        assert response.status_code == 200, response.text


def _wrong_values(accepted: frozenset[str]) -> st.SearchStrategy[Any]:
    return st.one_of(*(strategy for kind, strategy in OF_TYPE.items() if kind not in accepted))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/chat/completions", "/v1/messages"]),
    same_format=st.booleans(),
    data=st.data(),
)
def test_a_value_of_the_wrong_type_in_any_optional_field_is_a_400_naming_it(
    gateway: RunningGateway, path: str, same_format: bool, data: st.DataObject
) -> None:
    table = OPENAI_FIELDS if path == "/v1/chat/completions" else ANTHROPIC_FIELDS
    field = data.draw(st.sampled_from(sorted(table)), label="field")
    value = data.draw(_wrong_values(table[field]), label="value")
    assert kind_of(value) not in table[field]
    openai_path = path == "/v1/chat/completions"
    model = "gpt-4o-mini" if openai_path == same_format else "claude-haiku-4-5"
    before = upstream_calls(gateway)
    response = post(gateway, path, orjson.dumps({**VALID, "model": model, field: value}))
    message = refusal(response, path)
    assert message.startswith(f"{field}:"), message
    assert upstream_calls(gateway) == before


INNER_CASES = [
    ("openai", {"metadata": {"order": 7}}, "metadata.order: expected a string"),
    ("openai", {"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage: expected true or false"),
    ("openai", {"stop": ["end", 3]}, "stop[1]: expected a string"),
    ("openai", {"modalities": [["text"]]}, "modalities[0]: expected a string"),
    ("openai", {"logit_bias": {"50256": 250}}, "logit_bias.50256: must be a number between -100 and 100"),
    ("openai", {"logit_bias": {"50256": True}}, "logit_bias.50256: expected a number"),
    ("openai", {"tool_choice": "sometimes"}, "tool_choice: expected one of auto, none, required"),
    ("openai", {"user": 42}, "user: expected a string"),
    ("anthropic", {"metadata": {"user_id": 42}}, "metadata.user_id: expected a string"),
    ("anthropic", {"metadata": ["user"]}, "metadata: expected an object"),
    ("anthropic", {"stop_sequences": ["end", None]}, "stop_sequences[1]: expected a string"),
    ("anthropic", {"stop_sequences": "end"}, "stop_sequences: expected an array"),
]


@pytest.mark.parametrize(("api", "extra", "expected"), INNER_CASES)
def test_the_sdks_get_a_400_naming_the_field_inside_an_optional_one(
    gateway: RunningGateway, api: str, extra: dict[str, Any], expected: str
) -> None:
    before = upstream_calls(gateway)
    if api == "openai":
        gpt = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as refused:
            gpt.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5, extra_body=extra)
        message = refused.value.body["message"]  # type: ignore[index]
    else:
        claude = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as refused_claude:
            claude.messages.create(model="claude-haiku-4-5", messages=HELLO, max_tokens=5, extra_body=extra)
        body: Any = refused_claude.value.body
        assert body["type"] == "error"
        message = body["error"]["message"]
    assert message.startswith(expected), message
    assert upstream_calls(gateway) == before


EMBEDDING_CASES = [
    ({"dimensions": "256"}, "dimensions: expected a whole number"),
    ({"dimensions": 0}, "dimensions: must be at least 1"),
    ({"dimensions": True}, "dimensions: expected a whole number"),
    ({"encoding_format": "utf-8"}, "encoding_format: expected 'float' or 'base64'"),
    ({"user": ["alice"]}, "user: expected a string"),
    ({"extra_field": "[" * 200 + "]" * 200}, ""),  # a string: no nesting at all, passes through
]


@pytest.mark.parametrize(("extra", "expected"), EMBEDDING_CASES)
def test_embeddings_refuse_a_wrongly_typed_optional_field_before_any_upstream_call(
    gateway: RunningGateway, extra: dict[str, Any], expected: str
) -> None:
    before = upstream_calls(gateway)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    if not expected:
        client.embeddings.create(model="text-embedding-3-small", input="hi", extra_body=extra)
        assert upstream_calls(gateway) == before + 1
        return
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="text-embedding-3-small", input="hi", extra_body=extra)
    assert refused.value.body["message"].startswith(expected)  # type: ignore[index]
    assert upstream_calls(gateway) == before


def test_embeddings_refuse_a_body_nested_too_deep(gateway: RunningGateway) -> None:
    raw = orjson.dumps({"model": "text-embedding-3-small", "input": "hi", "extra_field": DEEP}).decode()
    response = post(gateway, "/v1/embeddings", raw.replace(f'"{DEEP}"', nested(200, "{")).encode())
    assert refusal(response, "/v1/embeddings").startswith("extra_field.a.a.a")


@pytest.mark.parametrize("metadata", [1, "x", [1], True, 2.5])
def test_a_metadata_that_is_not_an_object_is_a_400_naming_it(gateway: RunningGateway, metadata: Any) -> None:
    body = {**VALID, "model": "claude-haiku-4-5", "metadata": metadata}
    response = httpx2.post(f"{gateway.url}/v1/messages", json=body)
    assert refusal(response, "/v1/messages").startswith("metadata: expected an object")


def test_too_deep_a_body_is_a_400_naming_the_field(gateway: RunningGateway) -> None:
    for depth, where in ((300, "tools[0][0]"), (3000, "tools:")):  # past 1024 levels the parser stops
        raw = orjson.dumps({**VALID, "model": "gpt-4o-mini", "tools": DEEP}).decode()
        response = post(gateway, "/v1/chat/completions", raw.replace(f'"{DEEP}"', nested(depth, "[")).encode())
        message = refusal(response, "/v1/chat/completions")
        assert message.startswith(where) and "nested deeper than 128 levels" in message, message
