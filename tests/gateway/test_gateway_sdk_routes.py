"""The routes SDKs call besides the calls themselves (issue 14.11): one model, the model list in
Anthropic's shape, Anthropic's token count, and 404s that say what is served."""

from __future__ import annotations

import anthropic
import httpx2 as httpx
import openai
import pytest

from tests.support.gateway import RunningGateway
from thrifty.wire.anthropic_messages import parse_anthropic_request

MESSAGES = [{"role": "user", "content": "How many tokens is this question, roughly?"}]
SYSTEM = "You answer in one short sentence."


def test_one_model_is_retrieved_by_both_sdks(
    gateway: RunningGateway, gpt: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    names = gateway.runtime.routes.names()
    openai_model = gpt.models.retrieve(names[0])
    assert openai_model.id == names[0] and openai_model.object == "model"
    claude_model = claude.models.retrieve("claude-haiku-4-5")
    assert claude_model.id == "claude-haiku-4-5" and claude_model.type == "model"
    assert claude_model.created_at.tzinfo is not None
    with pytest.raises(openai.NotFoundError) as missing:
        gpt.models.retrieve("no-such-model")
    assert "no-such-model" in str(missing.value) and names[0] in str(missing.value)
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("no-such-model")


def test_the_anthropic_sdk_lists_models_in_its_own_shape(gateway: RunningGateway, claude: anthropic.Anthropic) -> None:
    page = claude.models.list()
    ids = [model.id for model in page.data]
    assert ids == gateway.runtime.routes.names()
    assert all(model.type == "model" for model in page.data)
    assert page.has_more is False and page.first_id == ids[0] and page.last_id == ids[-1]
    # the OpenAI shape is unchanged for clients that do not say anthropic-version
    plain = httpx.get(f"{gateway.url}/v1/models").json()
    assert plain["object"] == "list" and [m["id"] for m in plain["data"]] == ids


def test_count_tokens_answers_from_thrifty_s_count_flagged_approximate_for_claude(
    gateway: RunningGateway, claude: anthropic.Anthropic
) -> None:
    raw = claude.messages.with_raw_response.count_tokens(
        model="claude-sonnet-4-5",
        system=SYSTEM,
        messages=MESSAGES,  # type: ignore[arg-type]
    )
    counted = raw.parse()
    request = parse_anthropic_request(
        {"model": "claude-sonnet-4-5", "system": SYSTEM, "messages": MESSAGES, "max_tokens": 1}
    )
    route = gateway.runtime.routes.get("claude-sonnet-4-5")
    assert route is not None
    expected = gateway.runtime.counter.count_request(request, route.priced_as)
    assert counted.input_tokens == expected.input_tokens > 0
    assert raw.headers["x-thrifty-count"] == "approximate"
    assert "approximate" in raw.headers["x-thrifty-count-method"]
    # a count is not a call: after one real call, that call is the ledger's only row
    claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)  # type: ignore[arg-type]
    (record,) = gateway.records(1)
    assert record.requested_model == "claude-haiku-4-5" and gateway.runtime.ledger.count() == 1


def test_count_tokens_of_an_openai_model_is_exact(gateway: RunningGateway) -> None:
    name = next(n for n in gateway.runtime.routes.names() if n.startswith("gpt"))
    answer = httpx.post(f"{gateway.url}/v1/messages/count_tokens", json={"model": name, "messages": MESSAGES})
    assert answer.status_code == 200 and answer.json()["input_tokens"] > 0
    assert answer.headers["x-thrifty-count"] == "exact"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"messages": MESSAGES}, 400, "model"),
        ({"model": "nope", "messages": MESSAGES}, 404, "nope"),
        ({"model": "claude-haiku-4-5", "messages": "hi"}, 400, "messages"),
        ({"model": "claude-haiku-4-5", "messages": [{"role": "user"}]}, 400, "messages[0]"),
    ],
)
def test_count_tokens_refuses_bad_bodies_in_anthropic_s_error_shape(
    gateway: RunningGateway, body: dict[str, object], status: int, says: str
) -> None:
    answer = httpx.post(f"{gateway.url}/v1/messages/count_tokens", json=body)
    assert answer.status_code == status
    error = answer.json()
    assert error["type"] == "error" and says in error["error"]["message"]


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("/chat/completions", "did you mean /v1/chat/completions"),
        ("/messages", "did you mean /v1/messages"),
        ("/v1/completions", "legacy completions API is not served"),
        ("/v1/nothing", "this gateway serves: POST /v1/chat/completions"),
    ],
)
def test_unknown_routes_say_what_is_served(gateway: RunningGateway, path: str, hint: str) -> None:
    answer = httpx.post(f"{gateway.url}{path}", json={})
    assert answer.status_code == 404
    message = answer.json()["error"]["message"]
    assert hint in message and "GET /v1/models/{id}" in message
