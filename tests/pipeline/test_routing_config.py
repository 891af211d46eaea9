"""Routing's config as a user meets it: ``thrifty config check`` names the place of each problem
(including what the schema cannot see: the router file, custom checks); and the learned router
shares the request's embedding with whichever step computed it first (the semantic cache)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.core.test_routing_core import make_call, openai_body
from thrifty.cli.main import main
from thrifty.config.routing import load_optimisation_spec
from thrifty.core.pricing import PriceBook
from thrifty.core.routing.embedding import HashedNgrams, Matrix
from thrifty.core.routing.learned import train_router
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.call import Call, Result
from thrifty.pipeline.optimisation import Optimisation
from thrifty.pipeline.services import Sections, Services
from thrifty.pipeline.steps.routing import RouterStep

BASE = """
providers:
  sim: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  - {name: gpt-4o-mini, provider: sim}
  - {name: gpt-4o, provider: sim}
tiers: {small: [gpt-4o-mini], large: [gpt-4o]}
"""


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ("routing: {rules: [{tier: medium}]}", "routing.rules[0].tier: no tier 'medium' (tiers: small, large)"),
        ('routing: {rules: [{tier: large, regex: ["(x"]}]}', "routing.rules[0].regex: '(x' is not a valid regular"),
        ("routing: {rules: [{tier: large, min_prompt_tokens: -1}]}", "routing.rules[0].min_prompt_tokens"),
        ("routing: {policy: magic}", "routing.policy"),
        ("routing: {policy: learned}", "routing: policy learned needs a learned: section"),
        ("routing: {policy: learned, learned: {path: gone.json}}", "gone.json: no such router"),
        ("routing: {policy: learned, learned: {path: bad.json}}", "bad.json: not a thrifty router"),
        ("routing: {classifier: {model: nobody}, policy: classifier}", "routing.classifier.model: no model named"),
        ('routing: {escalation: {refusal_patterns: ["(x"]}}', "routing.escalation.refusal_patterns: '(x' is not"),
        ('routing: {escalation: {custom: ["nosuch.mod:fn"]}}', "routing.escalation.custom: cannot load"),
        ("routing: {learned: {path: r.json, thresholds: [0.2, 0.5]}}", "routing.learned.thresholds: give 1"),
        ("compression: {history: {summarise: {model: nobody}}}", "compression.history.summarise.model: no model"),
        ("output_caps: {plans: {free: 10}, users: {ann: pro}}", "output_caps: users.ann: no plan 'pro'"),
    ],
)
def test_config_check_says_where_a_routing_problem_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, says: str
) -> None:
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    path = tmp_path / "thrifty.yaml"
    path.write_text(BASE + section + "\n")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    if "router" in says:
        assert "routing.learned.path: " in err


def test_config_check_passes_a_routing_config_whose_router_file_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    embedder = HashedNgrams(256)
    prompts = [f"hard {i}" for i in range(10)] + [f"easy {i}" for i in range(10)]
    router = train_router(embedder, prompts, [0.0] * 10 + [1.0] * 10, [1.0] * 20, iterations=20)
    (tmp_path / "router.json").write_bytes(orjson.dumps(router.to_document()))
    path = tmp_path / "thrifty.yaml"
    path.write_text(BASE + "routing: {policy: [rules, learned], learned: {path: router.json}}\n")
    assert main(["config", "check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


class CountingEmbedder:
    """Hashed n-grams under another name, counting the texts it embeds."""

    def __init__(self) -> None:
        self.inner = HashedNgrams(256)
        self.texts: list[str] = []

    @property
    def name(self) -> str:
        return "shared-test-embedder"

    @property
    def dim(self) -> int:
        return 256

    def embed(self, texts: Sequence[str]) -> Matrix:
        self.texts.extend(texts)
        return self.inner.embed(texts)


def test_the_learned_router_uses_the_embedding_another_step_computed(tmp_path: Path) -> None:
    shared = CountingEmbedder()
    prompts = [f"prove lemma {i} rigorously" for i in range(10)] + [f"say hi to {i}" for i in range(10)]
    router = train_router(shared, prompts, [0.0] * 10 + [1.0] * 10, [1.0] * 20, iterations=50)
    (tmp_path / "router.json").write_bytes(orjson.dumps(router.to_document()))
    shared.texts.clear()
    spec = load_optimisation_spec(
        {
            "tiers": {"small": ["gpt-4o-mini"], "large": ["gpt-4o"]},
            "routing": {"policy": "learned", "learned": {"path": "router.json", "thresholds": [0.5]}},
        }
    )
    optimisation = Optimisation.in_process(spec, PriceBook(), TokenCounter(), base_dir=tmp_path, embedders=[shared])
    assert optimisation is not None and optimisation.learned is not None
    assert optimisation.learned.embedder is shared  # the very object the semantic cache would hold
    services = Services(
        PriceBook(), writer=[], counter=TokenCounter(), routes_of=lambda name: [], optimisation=optimisation
    )  # type: ignore[arg-type]
    step = RouterStep.from_config(Sections.of_client(None, spec), services)
    assert isinstance(step, RouterStep)

    async def answer(call: Call) -> Result:
        return Result(status=200, body=openai_body("ok"), served_model=call.model)

    def routed(call: Call) -> str:  # the model the routed copy went on with
        served = asyncio.run(step(call, answer)).served_model
        assert served is not None
        return served

    # The semantic cache embedded the last user message first: the router embeds nothing.
    first = make_call("prove lemma 3 rigorously", model="gpt-4o")
    first.embeddings[shared.name] = shared.embed(["prove lemma 3 rigorously"])[0]
    shared.texts.clear()
    assert routed(first) == "gpt-4o"
    assert shared.texts == []
    # On its own, it embeds the last user message once and leaves it for the steps after it.
    second = make_call("say hi to 4", model="gpt-4o")
    assert routed(second) == "gpt-4o-mini"
    assert shared.texts == ["say hi to 4"]
    assert np.allclose(second.embeddings[shared.name], shared.inner.embed(["say hi to 4"])[0])
