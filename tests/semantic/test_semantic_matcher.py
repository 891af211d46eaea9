"""The matcher's decision (threshold, guard, verifier), the request's keys, and the embedders."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from thrifty.semantic.embedder import Embedder, EmbedderError, OnnxEmbedder, ProviderEmbedder
from thrifty.semantic.index import LocalIndex
from thrifty.semantic.matcher import Candidate, SemanticMatcher, compared_text, context_key
from thrifty.semantic.verifier import Verifier


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder()


@pytest.fixture(scope="module")
def verifier(embedder: OnnxEmbedder) -> Verifier:
    return Verifier(embedder)


def test_the_local_embedder(embedder: OnnxEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    texts = ["How do I learn Python?", "What is the best way to learn Python?", "How tall is Mount Everest?"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.8
    assert sims[0, 2] < 0.3
    alone = embedder.embed([texts[0]])
    assert np.allclose(alone[0], vectors[0], atol=1e-5), "a text's vector does not depend on its batch"
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.embed("one string")  # type: ignore[arg-type]


def test_the_local_embedder_is_thread_safe(embedder: OnnxEmbedder) -> None:
    texts = [f"What is the best way to learn language number {i}?" for i in range(8)]
    expected = embedder.embed(texts)
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = embedder.embed([texts[i]])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        assert np.allclose(results[i], expected[i], atol=1e-5)


def test_a_missing_model_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = OnnxEmbedder(tmp_path / "none.onnx", tmp_path / "none.json")
    with pytest.raises(EmbedderError, match=r"none\.onnx: no such file"):
        broken.embed(["x"])
    (tmp_path / "none.onnx").write_bytes(b"junk")
    (tmp_path / "none.json").write_text("{}")
    with pytest.raises(EmbedderError, match=r"not a tokenizer file|cannot be loaded"):
        OnnxEmbedder(tmp_path / "none.onnx", tmp_path / "none.json").embed(["x"])


def test_the_provider_embedder_against_the_simulator(simulator_url: str) -> None:
    provider = ProviderEmbedder(f"{simulator_url}/v1", "text-embedding-3-small", dim=1536, timeout=10)
    assert isinstance(provider, Embedder)
    vectors = provider.embed(["hello", "world", "hello"])
    assert vectors.shape == (3, 1536)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2])
    short = ProviderEmbedder(f"{simulator_url}/v1", "text-embedding-3-small", dim=256, dimensions=256)
    assert short.embed(["hello"]).shape == (1, 256)
    wrong = ProviderEmbedder(f"{simulator_url}/v1", "text-embedding-3-small", dim=99)
    with pytest.raises(EmbedderError, match="99"):
        wrong.embed(["hello"])
    nowhere = ProviderEmbedder("http://127.0.0.1:9/v1", "m", dim=8, timeout=1)
    with pytest.raises(EmbedderError):
        nowhere.embed(["hello"])


def test_decide_threshold_guard_verifier(verifier: Verifier) -> None:
    matcher = SemanticMatcher(0.80, verifier=verifier, min_probability=0.5)
    miss = matcher.decide("How do I enable dark mode?", [])
    assert (miss.hit, miss.reason) == (False, "no candidates")
    low = matcher.decide("How do I enable dark mode?", [Candidate("a", "What is the capital of Peru?", 0.2)])
    assert not low.hit
    assert low.reason.startswith("below threshold")
    guarded = matcher.decide("How do I enable dark mode?", [Candidate("a", "How do I disable dark mode?", 0.97)])
    assert not guarded.hit
    assert guarded.reason == "guard: opposite actions: 'enable' vs 'disable'"
    assert guarded.similarity == 0.97
    hit = matcher.decide(
        "How can I lose weight fast?",
        [
            Candidate("bad", "How can I gain weight fast?", 0.95),
            Candidate("good", "What is the fastest way to lose weight?", 0.93),
        ],
    )
    assert hit.hit, hit
    assert hit.entry_id == "good"
    assert hit.probability is not None and hit.probability >= 0.5
    assert set(hit.timings) == {"guard", "verifier", "total"}
    strict = SemanticMatcher(0.80, verifier=verifier, min_probability=0.999)
    refused = strict.decide(
        "How can I lose weight fast?", [Candidate("g", "What is the fastest way to lose weight?", 0.93)]
    )
    assert not refused.hit
    assert refused.reason.startswith("verifier: ")


def test_threshold_per_namespace() -> None:
    matcher = SemanticMatcher(0.95, thresholds={"faq": 0.80}, guard=False)
    candidate = [Candidate("a", "How do I reset my password?", 0.90)]
    assert not matcher.decide("How can I reset my password?", candidate).hit
    assert matcher.decide("How can I reset my password?", candidate, namespace="faq").hit
    assert matcher.min_probability is None


def test_end_to_end_with_the_index(embedder: OnnxEmbedder, verifier: Verifier) -> None:
    index = LocalIndex(embedder.dim)
    stored = {
        "q1": "How do I reset my password?",
        "q2": "How do I delete my account?",
        "q3": "How do I enable two-factor authentication?",
    }
    system = [{"role": "system", "content": "You are the help desk of Example Corp."}]
    ctx = context_key([*system, {"role": "user", "content": "x"}], model="gpt-4o-mini")
    for entry, text in stored.items():
        index.add("support", ctx, entry, embedder.embed([text])[0])
    matcher = SemanticMatcher(0.85, verifier=verifier)

    def ask(question: str, context: str = ctx):  # type: ignore[no-untyped-def]
        found = index.search("support", context, embedder.embed([question])[0], k=3)
        return matcher.decide(question, [Candidate(e, stored[e], s) for e, s in found])

    assert ask("How can I reset my password?").entry_id == "q1"
    assert not ask("How do I disable two-factor authentication?").hit
    other = context_key(
        [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "x"}], model="gpt-4o-mini"
    )
    assert ask("How do I reset my password?", other).reason == "no candidates"


def test_context_key_and_compared_text() -> None:
    base = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How do I reset my password?"},
    ]
    assert compared_text(base) == "How do I reset my password?"
    rephrased = [*base[:3], {"role": "user", "content": "How can I reset my password?"}]
    assert context_key(base, model="m") == context_key(rephrased, model="m"), "only the compared text differs"
    other_system = [{"role": "system", "content": "Be verbose."}, *base[1:]]
    assert context_key(base, model="m") != context_key(other_system, model="m")
    assert context_key(base, model="m") != context_key(base, model="m2")
    assert context_key(base, model="m", temperature=0) != context_key(base, model="m", temperature=1)
    assert context_key(base, model="m", version="1") != context_key(base, model="m", version="2")
    earlier = [base[0], {"role": "user", "content": "Hey"}, *base[2:]]
    assert context_key(base, model="m") != context_key(earlier, model="m"), "earlier turns must match"
    image = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "a"}}],
        }
    ]
    image2 = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "What's this?"}, {"type": "image_url", "image_url": {"url": "b"}}],
        }
    ]
    assert compared_text(image) == "What is this?"
    assert context_key(image) != context_key(image2), "an image is matched exactly, not by meaning"
    assert compared_text([{"role": "system", "content": "x"}]) is None
