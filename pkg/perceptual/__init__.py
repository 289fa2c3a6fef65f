"""perceptual — a reproducibility study of Johnson, Alahi & Fei-Fei (ECCV 2016).

The package is laid out by job, each layer importing only the ones listed before it
(``tests/test_layout.py`` enforces it):

- :mod:`perceptual.core` — files, configuration, images, datasets, provenance;
- :mod:`perceptual.runtime` — what makes training and inference fast (precision, the graphed step,
  the fast inference path, int8, the resumable run folder);
- :mod:`perceptual.method` — the paper: loss networks, losses, networks, Gatys, training;
- :mod:`perceptual.evaluation` — PSNR/SSIM, LPIPS/DISTS, detail measures, the SR benchmark;
- :mod:`perceptual.tools` — applying trained networks: stylize photos, export to ONNX;
- :mod:`perceptual.study` — profiles, one runner per chapter, claims, the bench, published results;
- :mod:`perceptual.book` — building the book and the helpers its notebooks call;
- :mod:`perceptual.cli` — the command line, on top.

Modules that moved keep their old names: ``from perceptual.vgg import load_vgg`` and
``from perceptual import losses`` import the same module objects as
``perceptual.method.vgg`` / ``perceptual.method.losses`` (see :data:`MOVED`).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

__version__ = "0.1.0"

LAYERS = ("core", "runtime", "method", "evaluation", "tools", "study", "book", "cli")  # bottom to top

MOVED = {  # old module name → where it lives now
    **{m: f"perceptual.core.{m}" for m in ("paths", "config", "store", "images", "resize", "data", "demo")},
    **{m: f"perceptual.runtime.{m}" for m in ("precision", "trainstep", "inference", "quantization")},
    **{m: f"perceptual.method.{m}" for m in ("vgg", "losses", "objective", "transformer", "srcnn", "gatys",
                                              "train", "superres", "memory")},
    **{m: f"perceptual.evaluation.{m}" for m in ("metrics", "detail", "similarity")},
    **{m: f"perceptual.tools.{m}" for m in ("stylize", "export")},
    **{m: f"perceptual.study.{m}" for m in ("profiles", "experiments", "claims", "published", "jobs", "bench",
                                             "estimate")},
    "pages": "perceptual.book.pages",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``perceptual.<old>`` as the module that now holds it (the same object, lazily)."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name.partition(".")[2]])
        self._spec = module.__spec__  # the import machinery overwrites it; exec_module puts it back
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec


if not any(isinstance(f, _Alias) for f in sys.meta_path):
    sys.meta_path.append(_Alias())


def __getattr__(name: str):
    """``from perceptual import losses`` and ``perceptual.vgg`` for modules that moved."""
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
