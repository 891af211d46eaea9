"""Vector indexes: the in-process exact and ANN partitions and pgvector pass the same tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.pgvector import pgvector_server, pgvector_url  # noqa: F401  (fixtures)
from thrifty.semantic.index import IndexFileError, LocalIndex, VectorIndex

DIM = 16


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, seed: int, noise: float = 0.05) -> np.ndarray:
    w = v + noise * np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return w / np.linalg.norm(w)


@pytest.fixture(params=["exact", "ann", "pgvector"])
def index(request: pytest.FixtureRequest) -> Iterator[VectorIndex]:
    if request.param == "exact":
        yield LocalIndex(DIM)
    elif request.param == "ann":
        yield LocalIndex(DIM, exact_limit=0)  # every partition is an HNSW graph from its first entry
    else:
        from thrifty.semantic.pgvector import PgVectorIndex

        url = request.getfixturevalue("pgvector_url")
        pg = PgVectorIndex(url, DIM)
        yield pg
        pg.close()


def test_search_finds_the_nearest_first(index: VectorIndex) -> None:
    vectors = {f"e{i}": unit(i) for i in range(20)}
    for entry, v in vectors.items():
        index.add("ns", "ctx", entry, v)
    assert len(index) == 20
    found = index.search("ns", "ctx", near(vectors["e7"], 99), k=3)
    assert found[0][0] == "e7"
    assert found[0][1] > 0.95
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    exact = index.search("ns", "ctx", vectors["e3"], k=1)
    assert exact[0][0] == "e3"
    assert exact[0][1] == pytest.approx(1.0, abs=2e-3)


def test_partitions_never_mix(index: VectorIndex) -> None:
    v = unit(1)
    index.add("ns", "system-prompt-A", "a", v)
    index.add("other", "system-prompt-A", "b", v)
    assert index.search("ns", "system-prompt-B", v, k=5) == []
    assert [e for e, _ in index.search("ns", "system-prompt-A", v, k=5)] == ["a"]
    assert [e for e, _ in index.search("other", "system-prompt-A", v, k=5)] == ["b"]


def test_replace_and_remove(index: VectorIndex) -> None:
    index.add("ns", "c", "x", unit(1))
    index.add("ns", "c", "x", unit(2))
    index.add("ns", "c", "y", unit(3))
    assert len(index) == 2
    assert index.search("ns", "c", unit(2), k=1)[0][0] == "x"
    assert index.remove("ns", "c", "x") is True
    assert index.remove("ns", "c", "x") is False
    assert [e for e, _ in index.search("ns", "c", unit(2), k=5)] == ["y"]


def test_invalidation_by_namespace_and_clear(index: VectorIndex) -> None:
    for i in range(5):
        index.add("a", "c", f"a{i}", unit(i))
        index.add("b", "c", f"b{i}", unit(i))
    assert index.remove_namespace("a") == 5
    assert index.search("a", "c", unit(1), k=5) == []
    assert len(index) == 5
    index.clear()
    assert len(index) == 0
    assert index.search("b", "c", unit(1), k=5) == []


def test_bad_vectors_are_refused(index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="16"):
        index.add("ns", "c", "x", np.ones(DIM + 1, dtype=np.float32))
    with pytest.raises(ValueError, match="zero"):
        index.add("ns", "c", "x", np.zeros(DIM, dtype=np.float32))


def test_a_partition_moves_from_exact_to_ann_as_it_grows() -> None:
    index = LocalIndex(DIM, exact_limit=50)
    for i in range(50):
        index.add("ns", "c", f"e{i}", unit(i))
    assert index.partitions()[("ns", "c")] == ("exact", 50)
    index.add("ns", "c", "e50", unit(50))
    assert index.partitions()[("ns", "c")] == ("ann", 51)
    for i in (0, 25, 50):
        assert index.search("ns", "c", unit(i), k=1)[0][0] == f"e{i}"


def test_ann_agrees_with_exact_search() -> None:
    rng = np.random.default_rng(7)
    data = rng.standard_normal((3000, DIM)).astype(np.float32)
    ids = [f"e{i}" for i in range(len(data))]
    exact, ann = LocalIndex(DIM, exact_limit=10**9), LocalIndex(DIM, exact_limit=0)
    exact.add_many("ns", "c", ids, data)
    ann.add_many("ns", "c", ids, data)
    queries = rng.standard_normal((100, DIM)).astype(np.float32)
    agree = sum(exact.search("ns", "c", q, 1)[0][0] == ann.search("ns", "c", q, 1)[0][0] for q in queries)
    assert agree >= 95


@pytest.mark.parametrize("exact_limit", [10**6, 0])
def test_persistence_round_trip(tmp_path: Path, exact_limit: int) -> None:
    index = LocalIndex(DIM, exact_limit=exact_limit)
    for i in range(30):
        index.add("ns", f"c{i % 3}", f"e{i}", unit(i))
    index.add("other", "c0", "o", unit(100))
    index.remove("ns", "c0", "e0")
    path = tmp_path / "vectors.idx"
    index.save(path)
    loaded = LocalIndex.load(path)
    assert len(loaded) == len(index) == 30
    assert loaded.partitions() == index.partitions()
    for i in range(1, 30):
        q = unit(i)
        got, want = loaded.search("ns", f"c{i % 3}", q, 3), index.search("ns", f"c{i % 3}", q, 3)
        assert [e for e, _ in got] == [e for e, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want])
    loaded.add("ns", "c1", "new", unit(500))
    assert loaded.search("ns", "c1", unit(500), 1)[0][0] == "new"
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was renamed into place"


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    index = LocalIndex(DIM)
    index.add("ns", "c", "e", unit(1))
    path = tmp_path / "vectors.idx"
    index.save(path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IndexFileError, match=r"truncated|damaged"):
        LocalIndex.load(path)
    (tmp_path / "other").write_bytes(b"not an index")
    with pytest.raises(IndexFileError, match="not a thrifty vector index"):
        LocalIndex.load(tmp_path / "other")
    with pytest.raises(IndexFileError, match="cannot be read"):
        LocalIndex.load(tmp_path / "missing")


def test_usearch_and_onnxruntime_load_together_in_either_order() -> None:
    """usearch 2.26.5 and 2.26.6 crash onnxruntime's import when loaded first; 2.26.0 does not."""
    for first, second in (("usearch.index", "onnxruntime"), ("onnxruntime", "usearch.index")):
        done = subprocess.run(
            [sys.executable, "-c", f"import {first}, {second}"], capture_output=True, timeout=120, check=False
        )
        assert done.returncode == 0, (first, second, done.returncode, done.stderr[-500:])


def test_a_graph_saved_with_older_settings_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written before the graph settings changed (f16, connectivity 16) load and keep working."""
    from thrifty.semantic import index as module

    monkeypatch.setattr(module, "ANN_CONNECTIVITY", 16)
    old = LocalIndex(DIM, exact_limit=0)
    for i in range(40):
        old.add("ns", "c", f"e{i}", unit(i))
    path = tmp_path / "old.idx"
    old.save(path)
    monkeypatch.undo()
    loaded = LocalIndex.load(path)
    assert loaded.partitions() == {("ns", "c"): ("ann", 40)}
    for i in range(40):
        assert loaded.search("ns", "c", near(unit(i), i), 1)[0][0] == f"e{i}"
    loaded.add("ns", "c", "new", unit(900))
    assert loaded.search("ns", "c", unit(900), 1)[0][0] == "new"


def test_expansion_search_is_adjustable() -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((500, DIM)).astype(np.float32)
    index = LocalIndex(DIM, exact_limit=0, expansion_search=8)
    index.add_many("ns", "c", [f"e{i}" for i in range(len(data))], data)
    index.set_expansion_search(256)
    assert index.expansion_search == 256
    # Approximate search (a graph built by several threads differs run to run): nearly all, not all.
    found = sum(index.search("ns", "c", data[i], 1)[0][0] == f"e{i}" for i in range(0, 500, 5))
    assert found >= 95, found
    assert index.vector_bytes() > 0
    with pytest.raises(ValueError, match="positive"):
        index.set_expansion_search(0)
    with pytest.raises(ValueError, match="positive"):
        LocalIndex(DIM, expansion_search=0)
