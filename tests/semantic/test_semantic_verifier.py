"""The verifier's pair features: bounded whatever the token vectors, and symmetric."""

from __future__ import annotations

import numpy as np

from thrifty.semantic.embedder import TokenStates
from thrifty.semantic.verifier import FEATURE_NAMES, Prepared, pair_features, prepare_from_states

DIM = 8


def prepared(text: str, direction: float) -> Prepared:
    """Two word tokens pointing along ``direction`` times the first axis, between [CLS] and [SEP]."""
    hidden = np.zeros((4, DIM), dtype=np.float32)
    hidden[:, 0] = direction
    hidden[:, 1] = 0.01  # not exactly opposite: the mean best match is about -1, not a clean zero
    ids = np.array([101, 2000, 2001, 102], dtype=np.int64)
    return prepare_from_states(text, TokenStates(ids, hidden))


def test_opposite_token_vectors_give_bounded_alignment_scores() -> None:
    """Two unrelated questions can have negative token cosines everywhere; the F-scores of the
    alignment must stay in [0, 1] (they once divided by a near-zero sum and came out at -2e5)."""
    idf = np.ones(30522, dtype=np.float32)
    a, b = prepared("alpha beta", 1.0), prepared("gamma delta", -1.0)
    features = pair_features(a, b, idf)
    assert np.isfinite(features).all()
    for name in ("align_f", "align_f_idf"):
        value = features[FEATURE_NAMES.index(name)]
        assert 0.0 <= value <= 1.0, (name, value)
    assert np.allclose(features, pair_features(b, a, idf))


def test_the_same_question_aligns_perfectly() -> None:
    idf = np.ones(30522, dtype=np.float32)
    a = prepared("alpha beta", 1.0)
    features = pair_features(a, a, idf)
    assert abs(features[FEATURE_NAMES.index("align_f")] - 1) < 1e-6
    assert abs(features[FEATURE_NAMES.index("cosine")] - 1) < 1e-6
