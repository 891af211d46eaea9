"""Train the semantic cache's verifier and write ``src/thrifty/semantic/verifier.npz``.

    .venv/bin/python bench/semantic/train_verifier.py [--pairs FILE] [--target-precision 0.95]

Fits a logistic regression (L2, Newton steps, numpy only) on the TRAIN split of the pair file,
then picks the operating point on the CALIBRATION split: for each verifier cut, the lowest cosine
threshold whose precision (guard on) stays at or above the target plus a margin for sampling noise;
the cut with the most recall wins (``lowest_threshold``: precision must hold at every higher
threshold that makes 25 hits or more). The held-out split is not read here: bench.py and the tests
report on it. The token states of each text are cached in --cache (a few hundred MB), so a second
run only refits.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from thrifty.semantic.calibration import curve, lowest_threshold, read_pairs, split  # noqa: E402
from thrifty.semantic.embedder import OnnxEmbedder, TokenStates  # noqa: E402
from thrifty.semantic.guard import compare  # noqa: E402
from thrifty.semantic.verifier import (  # noqa: E402
    FEATURE_NAMES,
    Prepared,
    VerifierModel,
    pair_features,
    prepare_from_states,
)

DEFAULT_PAIRS = ROOT.parent / "shared" / "data" / "paraphrase-pairs" / "quora-val.csv"
VOCAB = 30522
CUTS = [round(0.30 + 0.01 * i, 2) for i in range(70)]


def token_states(texts: list[str], cache: Path) -> list[TokenStates]:
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    file = cache / f"states-{key}.npz"
    if file.exists():
        data = np.load(file)
        lengths, ids, hidden = data["lengths"], data["ids"], data["hidden"].astype(np.float32)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        return [TokenStates(ids[a:b], hidden[a:b]) for a, b in itertools.pairwise(bounds)]
    started = time.perf_counter()
    states = OnnxEmbedder(threads=2).encode_tokens(texts)
    print(f"encoded {len(texts)} texts in {time.perf_counter() - started:.0f} s")
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        file,
        lengths=np.array([len(s.ids) for s in states]),
        ids=np.concatenate([s.ids for s in states]),
        hidden=np.concatenate([s.hidden for s in states]).astype(np.float16),
    )
    return states


def idf_table(states: list[TokenStates]) -> npt.NDArray[np.float32]:
    df = np.zeros(VOCAB, dtype=np.float64)
    for s in states:
        df[np.unique(s.ids)] += 1
    idf = np.log((len(states) + 1) / (df + 1)) + 1.0
    idf[[0, 100, 101, 102, 103]] = 0.0  # [PAD] [UNK] [CLS] [SEP] [MASK]
    return idf.astype(np.float32)


def fit(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], lam: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.r_[np.full(z.shape[1] - 1, lam), 0.0]
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -40, 40)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, w


def features_of(pairs: list, prepared: dict[str, Prepared], idf: npt.NDArray[np.float32]) -> np.ndarray:
    return np.stack([pair_features(prepared[p.a], prepared[p.b], idf) for p in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--target-precision", type=float, default=0.95)
    parser.add_argument("--margin", type=float, default=0.0, help="added to the target on the calibration split")
    parser.add_argument("--lam", type=float, default=1.0, help="L2 penalty")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "thrifty" / "semantic" / "verifier.npz")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/thrifty-semantic-cache"))
    args = parser.parse_args()

    pairs = read_pairs(args.pairs)
    train, calibration = split(pairs, "train"), split(pairs, "calibration")
    texts = sorted({t for p in train + calibration for t in (p.a, p.b)})
    states = dict(zip(texts, token_states(texts, args.cache), strict=True))
    train_texts = sorted({t for p in train for t in (p.a, p.b)})
    idf = idf_table([states[t] for t in train_texts])
    prepared = {t: prepare_from_states(t, s) for t, s in states.items()}

    x_train = features_of(train, prepared, idf)
    y_train = np.array([p.label for p in train], dtype=np.float64)
    x_cal = features_of(calibration, prepared, idf)
    y_cal = np.array([p.label for p in calibration])
    mean, scale, weights = fit(x_train, y_train, args.lam)
    empty = VerifierModel(mean, scale, weights, idf, 0.5, 0.9, {})
    p_cal = empty.probability(x_cal)
    cos_cal = x_cal[:, FEATURE_NAMES.index("cosine")]
    guard_ok = np.array([compare(prepared[p.a].guard, prepared[p.b].guard) is None for p in calibration])

    target = args.target_precision + args.margin
    best: tuple[float, float, float, float] | None = None  # recall, precision, cut, threshold
    for cut in CUTS:
        c = curve(cos_cal, y_cal, guard_ok & (p_cal >= cut))
        threshold = lowest_threshold(c, target)
        if threshold is None:
            continue
        point = c.at(threshold)
        if best is None or point.recall > best[0] + 1e-9:
            best = (point.recall, point.precision or 0.0, cut, threshold)
    if best is None:
        raise SystemExit(f"no operating point reaches precision {target} on the calibration split")
    recall, precision, cut, threshold = best
    print(f"calibration split: cut {cut}, threshold {threshold}: precision {precision:.3f}, recall {recall:.3f}")
    print("largest weights:")
    for i in np.argsort(-np.abs(weights[:-1]))[:10]:
        print(f"  {FEATURE_NAMES[i]:>16} {weights[i]:+.3f}")
    info = {
        "trained_on": f"{args.pairs.name}, train split ({len(train)} pairs)",
        "calibrated_on": f"{args.pairs.name}, calibration split ({len(calibration)} pairs)",
        "target_precision": args.target_precision,
        "margin": args.margin,
        "lam": args.lam,
        "calibration_precision": round(precision, 4),
        "calibration_recall": round(recall, 4),
        "embedding_model": "all-MiniLM-L6-v2-int8",
    }
    VerifierModel(mean, scale, weights, idf, cut, threshold, info).save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
