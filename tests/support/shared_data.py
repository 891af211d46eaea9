"""The public data sets in the workspace's ``shared/data`` (never copied into the project).

CI runs on a clone whose place is not fixed, so the data is looked for in order: the directory
named by ``THRIFTY_SHARED_DATA``, ``shared/data`` beside the repository, then the workspace's
``/work/shared/data``. A missing data set fails the tests that read it (they never skip).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data"]


def _roots() -> list[Path]:
    roots = []
    if os.environ.get("THRIFTY_SHARED_DATA"):
        roots.append(Path(os.environ["THRIFTY_SHARED_DATA"]))
    roots.append(Path(__file__).resolve().parents[3] / "shared" / "data")
    roots.append(Path("/work/shared/data"))
    return roots


def shared_data(relative: str) -> Path:
    """The data file ``relative`` (e.g. ``routing-outcomes/gsm8k.csv``) in the first place that has
    it; when none has, the last place looked (reading it then fails, naming the path)."""
    roots = _roots()
    for root in roots:
        if (root / relative).is_file():
            return root / relative
    return roots[-1] / relative
