"""``thrifty eval``: measure a strategy on labelled data before trusting it in production."""

from __future__ import annotations

import click

from thrifty.cli.cache_eval import eval_cache
from thrifty.cli.routing import eval_router

__all__ = ["evaluate"]


@click.group("eval")
def evaluate() -> None:
    """Score the semantic cache (labelled pairs) or a router (labelled outcomes)."""


evaluate.add_command(eval_cache)
evaluate.add_command(eval_router)
