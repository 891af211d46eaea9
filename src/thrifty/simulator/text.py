"""Deterministic answers whose token counts are known without tokenizing them.

Every piece of an answer is one token in both o200k_base and cl100k_base (checked by the tests,
and once when a bank is built with an encoding): a word with its leading space (`` model``), a
sentence-opening word without one (``The``), or ``,`` / ``.``. BPE splits text at spaces and
punctuation before merging, so an answer of N pieces is exactly N tokens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import tiktoken

__all__ = ["OPENERS", "WORDS", "Answer", "TextBank"]

# Lower-case words, each one token with and without a leading space in both encodings.
_WORD_TEXT = """
the a an of to and in is it that for on with as by at from this be are was or not can will each model data
answer result system value request token cost price cache test time work user reply text output input note
first next last new old good fast small large simple clear short long plan step case point part line list set
code file table item name word number order rule form view page task goal idea fact reason method way process
change check build run use make take give find show keep read write send hold move turn call start end open
close help add count track save report update return select store load share serve base core key main real
full final same other more most less few many much all some any every both such only also then now here there
when where which what who how why well very just still even often always never again about after before under
over into through during between against without within along around above below near far high low early late
right left true false general common local global public private recent current previous future total average
basic major minor single double direct quick easy hard safe strong weak light heavy ready free busy able
likely possible usual exact proper steady stable
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
# Sentence openers: one token with and without a leading space in both encodings.
OPENERS: tuple[str, ...] = ("The", "A", "This", "Each", "Every", "Some", "Most", "Our", "Its", "That")

_CORPUS_PIECES = 8192
_SEED = 20240611


@dataclass(frozen=True, slots=True)
class Answer:
    pieces: tuple[str, ...]
    """One token each, except perhaps the last when a stop sequence cut it."""
    tokens: int
    finish: str
    """``stop`` (natural end), ``length`` (max tokens) or ``stop_sequence``."""
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class TextBank:
    """A fixed corpus of single-token pieces; an answer is a slice of it starting at a sentence."""

    def __init__(self, min_tokens: int, max_tokens: int, encodings: tuple[tiktoken.Encoding, ...] = ()) -> None:
        self.min_tokens = min_tokens
        self.max_tokens = max_tokens
        rng = random.Random(_SEED)
        pieces: list[str] = []
        starts: list[int] = []
        ends: list[int] = []  # indices of "." pieces
        while len(pieces) < _CORPUS_PIECES + max_tokens + 64:
            starts.append(len(pieces))
            pieces.append(" " + rng.choice(OPENERS))
            length = rng.randint(5, 16)
            for i in range(length):
                pieces.append(" " + rng.choice(WORDS))
                if 2 < i < length - 2 and rng.random() < 0.08:
                    pieces.append(",")
            ends.append(len(pieces))
            pieces.append(".")
        self._pieces = tuple(pieces)
        self._starts = tuple(s for s in starts if s < _CORPUS_PIECES)
        # next_end[i]: the first sentence end at or after i; prev_end[i]: the last one at or before i.
        next_end = [0] * len(pieces)
        prev_end = [-1] * len(pieces)
        nxt = len(pieces) - 1
        for i in range(len(pieces) - 1, -1, -1):
            if pieces[i] == ".":
                nxt = i
            next_end[i] = nxt
        prv = -1
        for i, piece in enumerate(pieces):
            if piece == ".":
                prv = i
            prev_end[i] = prv
        self._next_end = next_end
        self._prev_end = prev_end
        for encoding in encodings:
            _check_single_tokens(encoding)

    def natural_length(self, seed: int) -> tuple[int, int]:
        """(offset, length) of the answer for ``seed``: a whole number of sentences when it can be."""
        offset = self._starts[seed % len(self._starts)]
        span = self.max_tokens - self.min_tokens + 1
        length = self.min_tokens + (seed >> 20) % span
        last = offset + length - 1
        end = self._next_end[last]
        if end - offset + 1 <= self.max_tokens:
            return offset, end - offset + 1
        end = self._prev_end[last]
        if end >= offset and end - offset + 1 >= self.min_tokens:
            return offset, end - offset + 1
        return offset, length

    def answer(
        self,
        seed: int,
        limit: int | None = None,
        stops: tuple[str, ...] = (),
        encoding: tiktoken.Encoding | None = None,
    ) -> Answer:
        offset, length = self.natural_length(seed)
        finish = "stop"
        if limit is not None and limit < length:
            length, finish = limit, "length"
        pieces = list(self._pieces[offset : offset + length])
        if pieces:
            pieces[0] = pieces[0][1:]
        return cut_at_stop(pieces, finish, stops, encoding)

    def words(self, seed: int, count: int) -> str:
        """``count`` words (no punctuation) for filling JSON values."""
        offset = seed % _CORPUS_PIECES
        out: list[str] = []
        i = offset
        while len(out) < count:
            piece = self._pieces[i]
            if piece not in (",", "."):
                out.append(piece[1:])
            i += 1
        return " ".join(out)


def cut_at_stop(pieces: list[str], finish: str, stops: tuple[str, ...], encoding: tiktoken.Encoding | None) -> Answer:
    """Cut the answer before the first stop sequence it contains. A cut inside a piece leaves a
    partial piece, counted with ``encoding`` (or as one token when none is given)."""
    if stops:
        text = "".join(pieces)
        best = -1
        matched: str | None = None
        for stop in stops:
            if stop:
                at = text.find(stop)
                if at != -1 and (best == -1 or at < best):
                    best, matched = at, stop
        if matched is not None:
            kept: list[str] = []
            position = 0
            tokens = 0
            for piece in pieces:
                if position + len(piece) <= best:
                    kept.append(piece)
                    tokens += 1
                    position += len(piece)
                    continue
                partial = piece[: best - position]
                if partial:
                    kept.append(partial)
                    tokens += len(encoding.encode_ordinary(partial)) if encoding is not None else 1
                break
            return Answer(tuple(kept), tokens, "stop_sequence", matched)
    return Answer(tuple(pieces), len(pieces), finish)


def _check_single_tokens(encoding: tiktoken.Encoding) -> None:
    for word in WORDS:
        for form in (word, " " + word):
            if len(encoding.encode_ordinary(form)) != 1:
                raise RuntimeError(f"simulator word {form!r} is not a single {encoding.name} token")
    for word in OPENERS:
        for form in (word, " " + word):
            if len(encoding.encode_ordinary(form)) != 1:
                raise RuntimeError(f"simulator opener {form!r} is not a single {encoding.name} token")
