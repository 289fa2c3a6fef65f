"""Verdicts, outcomes, the claim record and read access to a results folder: what every
claim module of :mod:`perceptual.study.claims` builds on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from perceptual.core import paths, store

REPRODUCED, PARTLY, NOT, INCONCLUSIVE, UNTESTED = "reproduced", "partly", "not reproduced", "inconclusive", "not tested"
VERDICTS = (REPRODUCED, PARTLY, INCONCLUSIVE, NOT, UNTESTED)  # the tally's order (the book's VERDICT_ORDER)
_JUDGED = (REPRODUCED, PARTLY, NOT)  # best to worst


class Outcome(NamedTuple):
    evidence: str
    verdict: str
    reason: str = ""  # why the verdict is inconclusive or not tested; "" for a judgement


def _inconclusive(evidence: str, reason: str, details: str = "") -> Outcome:
    """The measurement, then why it cannot be judged (``reason``, short; ``details``: the numbers)."""
    tail = f"Inconclusive — {reason}" + (f": {details}" if details else "")
    return Outcome(f"{evidence}. {tail}." if evidence else f"{tail}.", INCONCLUSIVE, reason)


def _untested(reason: str) -> Outcome:
    return Outcome(reason, UNTESTED, reason)


def _worst(verdicts) -> str:
    return max(verdicts, key=_JUDGED.index)


@dataclass(frozen=True)
class Claim:
    id: str
    where: str
    statement: str
    rule: str
    test: Callable[["Results"], Outcome]
    apart: bool = False  # an extra criterion of this study: shown apart, not in the headline tally


class Results:
    """Read access to one profile's results folder (missing tables → None)."""

    def __init__(self, profile: str, root: Path | None = None):
        self.profile = profile
        self.dir = (root or paths.results_dir()) / profile

    def table(self, rel: str) -> pd.DataFrame | None:
        path = self.dir / rel
        return pd.read_csv(path) if path.is_file() else None

    def meta(self, rel: str) -> dict:
        path = self.dir / rel
        return store.read_meta(path) if path.is_file() else {}

    def image(self, rel: str) -> np.ndarray | None:
        from PIL import Image

        path = self.dir / rel
        if not path.is_file():
            return None
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float64)

    def model_meta(self, recorded: str | None) -> dict:
        """The meta of a network a table's meta names (an absolute path where it was computed): the
        same run folder under this results folder's ``models/``; {} when it is not there."""
        if not recorded:
            return {}
        path = self.dir / "models" / Path(recorded).parent.name / "model.pt"
        return (store.read_meta_or_none(path) or {}) if path.is_file() else {}


def _fmt_k(k: float) -> str:
    """An iteration count or a median of them: 24, 24.5 (never rounded to 24)."""
    return f"{k:g}"


def iterations_text(k: float, run: int) -> str:
    """L-BFGS iterations to match: ``≥ run`` when it never did within the run."""
    return f"≥{int(run)}" if np.isinf(k) else _fmt_k(k)
