"""The chapters' runners under their old name: :mod:`perceptual.study.chapters` holds them now, one
module per chapter, and this module re-exports its names, so that ``from perceptual.study import
experiments`` (notebooks, tests, ``perceptual.experiments``) keeps working. A name patched here does
not reach the runners: patch it in the chapter module that uses it (``perceptual.study.chapters.speed``).
"""
from __future__ import annotations

from perceptual.study import bench, chapters  # bench: notebooks read ``experiments.bench.PAPER_TABLE1``

__all__ = ["bench", *chapters.__all__]
globals().update({name: getattr(chapters, name) for name in chapters.__all__})
