"""Compression: fewer tokens in (retrieved-context pruning, whitespace, history) and out (caps).

Pure logic over the wire request bodies, no I/O; the pipeline steps are in
``thrifty.pipeline.steps.compression``.
"""

from __future__ import annotations

from thrifty.core.compression.caps import PlanTable, add_instruction, apply_cap
from thrifty.core.compression.compress import CompressionSettings, Prepared, compress_body, finish, prepare
from thrifty.core.compression.retrieval import CHUNK_KEY
from thrifty.core.compression.validity import request_problem
from thrifty.core.compression.whitespace import normalise_whitespace

__all__ = [
    "CHUNK_KEY",
    "CompressionSettings",
    "PlanTable",
    "Prepared",
    "add_instruction",
    "apply_cap",
    "compress_body",
    "finish",
    "normalise_whitespace",
    "prepare",
    "request_problem",
]
