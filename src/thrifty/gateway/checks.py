"""Every problem of a gateway config file, in one pass: what ``thrifty config check`` reports and
what a reload refuses. The schema and the references between sections come from
``thrifty.config.check``; the stages here need more than the config package: the models' prices,
the router file and the custom checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.config.check import CheckedFile, check_file, touches
from thrifty.config.files import ConfigError
from thrifty.config.gateway import GatewayConfig
from thrifty.config.problems import Problem
from thrifty.core.pricing import PriceBook, UnknownModelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from thrifty.core.pricing import Catalogue

__all__ = ["check_gateway_file", "later_stages"]

_OPTIMISATION = ("tiers", "routing", "compression", "output_caps")


def check_gateway_file(
    path: Path, sections: Sequence[str] = (), catalogue: Catalogue | None = None
) -> tuple[CheckedFile, list[Problem]]:
    """The file as ``check_file`` reads it, and every problem of it (``catalogue``: the price
    catalogue to check the models against, when one is loaded already)."""
    checked = check_file(path, sections)
    return checked, checked.problems + later_stages(checked, path.resolve().parent, catalogue)


def later_stages(checked: CheckedFile, base_dir: Path, catalogue: Catalogue | None = None) -> list[Problem]:
    """Prices of the models, then the router file and the custom checks: each stage once the
    sections it reads are free of problems."""
    from thrifty.gateway.runtime import build_price_book
    from thrifty.pipeline.optimisation import Optimisation

    if checked.kind == "prices":
        return []
    values = checked.values
    # The sections that validated, as one config: the stages read only the sections they need.
    config = checked.config or GatewayConfig.model_construct(**{"models": [], "providers": {}, **values})
    problems: list[Problem] = []
    book = PriceBook(catalogue=catalogue)
    if "prices" in values and not touches(checked.problems, ("prices", "models")):
        try:
            book = build_price_book(config, base_dir, catalogue)
        except ConfigError as error:
            problems.append(Problem("prices", str(error)))
        else:
            for index, model in enumerate(config.models):
                try:
                    book.quote(model.priced_as)
                except UnknownModelError as error:
                    problems.append(Problem(f"models[{index}] ({model.name})", str(error), "set price_as or price"))
    if any(name in values for name in _OPTIMISATION) and not touches(
        checked.problems + problems, ("models", *_OPTIMISATION)
    ):
        problem = Optimisation.check(config, book, base_dir)
        if problem is not None:
            problems.append(Problem.parse(problem))
    return problems
