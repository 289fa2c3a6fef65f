"""Runners that compute each style-transfer figure and table and write them under
``results/<profile>/<chapter>/`` (CSV + ``.meta.json`` + images), one module per chapter
(:mod:`.inversion`, :mod:`.objective`, :mod:`.qualitative`, :mod:`.speed`, :mod:`.superres`) on top of
what they share (:mod:`.context`: the :class:`Context`, the trained networks). Notebooks call these,
then plot what they wrote. Every runner skips work whose outputs exist for the same config hash.
:data:`STEPS` names every runner; :mod:`perceptual.study.experiments` is this package's old name.
"""
from __future__ import annotations

# ``chapters.speed`` and ``chapters.qualitative`` are the runners, which hide their modules of the same
# name: reach a module as ``importlib.import_module("perceptual.study.chapters.speed")`` (to patch its names)
from perceptual.study.chapters.context import (SR_METHODS, Context, build_preset, loader_workers, models_dir,
                                               runner, sr_config, sr_methods, sr_model, sr_run_dir, square_image,
                                               style_config, style_entry, style_model, style_model_path,
                                               style_run_dir, trained_iterations, trained_runs)
from perceptual.study.chapters.inversion import FEATURE_LAYERS, STYLE_LAYERS, inversions
from perceptual.study.chapters.objective import calibration_curves, calibration_pairs, objective_curves
from perceptual.study.chapters.qualitative import (REFERENCE_OUTPUTS, match_references, qualitative,
                                                   reference_outputs, style_key)
from perceptual.study.chapters.speed import (BENCH, SENSITIVITY_SIZE, TINY, BenchSizes, speed, speed_bench,
                                             speed_sensitivity)
from perceptual.study.chapters.sr_ablation import feat_ablation
from perceptual.study.chapters.superres import sr_models, superresolution

__all__ = ["Context", "runner", "square_image", "loader_workers", "style_entry", "style_config", "models_dir",
           "style_run_dir", "style_model_path", "style_model", "SR_METHODS", "sr_methods", "sr_config",
           "sr_run_dir", "sr_model", "build_preset", "trained_runs", "trained_iterations",
           "FEATURE_LAYERS", "STYLE_LAYERS", "inversions",
           "objective_curves", "calibration_curves", "calibration_pairs",
           "qualitative", "REFERENCE_OUTPUTS", "style_key", "match_references", "reference_outputs",
           "speed", "BenchSizes", "BENCH", "TINY", "SENSITIVITY_SIZE", "speed_sensitivity", "speed_bench",
           "sr_models", "superresolution", "feat_ablation",
           "STEPS", "DIAGNOSTICS"]

# every runner, by the name used in book.CHAPTERS and `perceptual run`
STEPS = {"inversion": inversions, "objective": objective_curves, "qualitative": qualitative, "speed": speed,
         "superres": superresolution}
# runners `perceptual run NAME` accepts that no chapter calls (studies of one question, run on request)
DIAGNOSTICS = {"feat-ablation": feat_ablation}
