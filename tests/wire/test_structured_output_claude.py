"""Anthropic structured outputs in the simulator (issue 14.12): ``output_config.format`` (and the beta
``output_format``) make the answer JSON that follows the schema, so ``response_format: json_schema``
sent to a Claude model through the gateway comes back as JSON, as it does from Anthropic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.support.gateway import RunningGateway
from thrifty.core.routing.checks import schema_error
from thrifty.simulator import BackgroundSimulator

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "temperature": {"type": "number"},
        "conditions": {"type": "string", "enum": ["sunny", "cloudy", "rain"]},
        "hourly": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["city", "temperature", "conditions", "hourly"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "Weather in Lisbon as JSON."}]


@pytest.fixture(scope="module")
def simulator() -> Iterator[BackgroundSimulator]:
    with BackgroundSimulator() as running:
        yield running


@pytest.fixture
def claude(simulator: BackgroundSimulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=simulator.anthropic_base_url, api_key="sk-ant-test", max_retries=0)


def _json_text(message: anthropic.types.Message) -> Any:
    (block,) = message.content
    assert block.type == "text"
    return json.loads(block.text)


@pytest.mark.parametrize("field", ["output_config", "output_format"])
def test_the_answer_follows_the_schema(claude: anthropic.Anthropic, field: str) -> None:
    spec = {"type": "json_schema", "schema": SCHEMA}
    extra = {"output_config": {"format": spec}} if field == "output_config" else {"output_format": spec}
    message = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=400,
        messages=ASK,  # type: ignore[arg-type]
        extra_body=extra,
    )
    value = _json_text(message)
    assert schema_error(value, SCHEMA) is None and set(value) == set(SCHEMA["properties"])
    assert message.stop_reason == "end_turn"


def test_a_streamed_answer_follows_the_schema(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=400,
        messages=ASK,  # type: ignore[arg-type]
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    ) as stream:
        final = stream.get_final_message()
    assert schema_error(_json_text(final), SCHEMA) is None


def test_max_tokens_cuts_the_json_and_says_so(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=5,
        messages=ASK,  # type: ignore[arg-type]
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    )
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 5


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format.type"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
        ({"output_config": 3}, "output_config"),
        ({"output_format": "json"}, "output_format"),
    ],
)
def test_a_bad_output_format_is_a_400_naming_the_field(
    claude: anthropic.Anthropic, extra: dict[str, Any], says: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=ASK, extra_body=extra)  # type: ignore[arg-type]
    assert says in str(refused.value)


def test_response_format_json_schema_to_claude_through_the_gateway_is_json(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-needed", max_retries=0)
    completion = client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=400,
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}},
    )
    content = completion.choices[0].message.content
    assert content is not None
    assert schema_error(json.loads(content), SCHEMA) is None
