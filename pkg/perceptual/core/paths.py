"""Every filesystem location the project uses, in one place.

Nothing here depends on the working directory. Locations come from environment variables
when set, else from the checkout this package was installed from (``pip install -e .``),
else from the user cache directory.

| variable               | meaning                                   | default                        |
|------------------------|-------------------------------------------|--------------------------------|
| ``PERCEPTUAL_DATA_ROOT`` | local mirror of the datasets (read-only) | the download cache below        |
| ``PERCEPTUAL_CACHE``     | downloads, decoded weights               | ``~/.cache/perceptual``         |
| ``PERCEPTUAL_RESULTS``   | generated tables, models, notebooks      | ``<checkout>/results``          |
| ``PERCEPTUAL_READ_ONLY`` | ``1``: only read results (published book) | unset                          |
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # pkg/perceptual


def _checkout() -> Path | None:
    """The source checkout (``pkg/perceptual`` → root) when installed editable, else None."""
    root = PACKAGE.parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "pkg").is_dir() else None


ROOT: Path | None = _checkout()


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """Downloads and decoded weights (``PERCEPTUAL_CACHE``)."""
    return _env_path("PERCEPTUAL_CACHE") or Path.home() / ".cache" / "perceptual"


def data_root() -> Path:
    """Where datasets are read from: ``PERCEPTUAL_DATA_ROOT`` or the download cache."""
    return _env_path("PERCEPTUAL_DATA_ROOT") or cache_dir() / "data"


def data_root_is_mirror() -> bool:
    """True when the user pointed us at a local mirror (never downloaded into)."""
    return _env_path("PERCEPTUAL_DATA_ROOT") is not None


def results_dir() -> Path:
    """Generated results (``PERCEPTUAL_RESULTS``, else ``<checkout>/results``)."""
    env = _env_path("PERCEPTUAL_RESULTS")
    if env is not None:
        return env
    if ROOT is not None:
        return ROOT / "results"
    return cache_dir() / "results"


def published_dir() -> Path:
    """Published results committed to git (``<checkout>/results/published``): what the book shows
    when nothing was computed locally (``perceptual publish`` writes it, ``perceptual compare`` reads it)."""
    if ROOT is None:
        raise RuntimeError("published results live in the git checkout; install with `pip install -e .`")
    return ROOT / "results" / "published"


def published_benchmarks_dir() -> Path:
    """Speed benchmark tables measured on other machines (a GPU box), committed beside the
    published profiles (``perceptual publish-bench``); the Speed chapter shows every one."""
    return published_dir() / BENCHMARKS


BENCHMARKS = "benchmarks"  # the one folder under results/published that is no profile


def published_sensitivity_dir() -> Path:
    """``perceptual bench --sensitivity`` tables measured on other machines (``publish-bench``)."""
    return published_benchmarks_dir() / "sensitivity"


def read_only() -> bool:
    """True while rendering published results (``PERCEPTUAL_READ_ONLY=1``): runners only read
    their tables and never compute (:func:`perceptual.study.chapters.context.runner`)."""
    return os.environ.get("PERCEPTUAL_READ_ONLY", "").strip() == "1"


def tables_dir() -> Path:
    """Versioned data tables (the dataset registry): ``<checkout>/data``."""
    if ROOT is None:
        raise RuntimeError("the data tables live in the git checkout; install with `pip install -e .`")
    return ROOT / "data"


def book_dir() -> Path:
    if ROOT is None:
        raise RuntimeError("the book sources live in the git checkout; install with `pip install -e .`")
    return ROOT / "book"
