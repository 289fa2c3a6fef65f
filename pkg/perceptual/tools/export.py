"""ONNX export of a trained network (``perceptual export model.pt out.onnx``) and ONNX Runtime
inference.

The exported graph is the fast path's network (:func:`perceptual.runtime.inference.inference_model`:
batch norm folded into the convolutions), float32, with dynamic batch, height and width: one
file serves every image size. Input ``image`` (B, 3, H, W) RGB in [0, 255]; output (B, 3, s·H,
s·W) in [0, 255] (s = 1 for style networks, the factor for super-resolution). The style network
needs H, W ≥ 44 (its 40 px reflection pad). Exported with PyTorch's ``torch.export``-based
exporter (``dynamo=True``, needs ``onnxscript``); :func:`check` compares ONNX Runtime with
PyTorch on real images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from perceptual.evaluation import metrics
from perceptual.core import store
from perceptual.runtime.inference import fold_batchnorm, run
from perceptual.method.train import load_model

MIN_SIDE = 44  # the style network's 40 px reflection pad needs ≥ 41; multiples of 4 from there
OPSET = 18


class OnnxUnavailable(RuntimeError):
    """onnx / onnxruntime / onnxscript are not installed (``pip install 'perceptual[onnx]'``)."""


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OnnxUnavailable(f"ONNX export needs {module}: pip install 'perceptual[onnx]' "
                              "(onnx, onnxruntime, onnxscript)") from err


def export_module(model: nn.Module, path: str | Path, example_side: int = 64) -> Path:
    """Write ``model`` folded, float32, with dynamic batch/height/width to ``path`` (atomically)."""
    _require("onnxscript")
    folded = fold_batchnorm(model).float().cpu()
    example = torch.full((1, 3, example_side, example_side), 127.5)
    dims = {0: torch.export.Dim("batch", min=1, max=1024),
            2: torch.export.Dim("height", min=MIN_SIDE, max=16384),
            3: torch.export.Dim("width", min=MIN_SIDE, max=16384)}
    path = Path(path)
    with store.atomic_path(path) as tmp:
        program = torch.onnx.export(folded, (example,), dynamo=True, dynamic_shapes=(dims,), opset_version=OPSET,
                                    input_names=["image"], output_names=["output"], verbose=False)
        program.save(str(tmp), external_data=False)
    return path


def export_checkpoint(checkpoint: str | Path, path: str | Path) -> Path:
    """``model.pt`` / ``checkpoint.pt`` → ONNX file (see the module docstring)."""
    model, meta = load_model(checkpoint)
    out = export_module(model, path)
    onnx = _require("onnx")
    proto = onnx.load(str(out))
    for key, value in (("perceptual.kind", meta.get("kind", "")), ("perceptual.source", str(checkpoint)),
                       ("perceptual.arch", str(meta.get("arch", ""))), ("perceptual.style", str(meta.get("style", "")))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with store.atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    return out


def session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session (``threads``: intra-op threads, default: all cores)."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(sess, batch: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 255] → the network's output, float32 tensor."""
    out = sess.run(None, {sess.get_inputs()[0].name: batch.float().contiguous().cpu().numpy()})[0]
    return torch.from_numpy(np.asarray(out))


def check(model: nn.Module, path: str | Path, images: list[torch.Tensor]) -> list[float]:
    """PSNR (dB, all channels) of ONNX Runtime against PyTorch's float32 fast path on each
    (3, H, W) image."""
    from perceptual.runtime.inference import inference_model

    fast = inference_model(model)
    sess = session(path)
    out = []
    for image in images:
        ref = run(fast, image[None]).clamp(0, 255)
        out.append(metrics.psnr_rgb(ref, run_onnx(sess, image[None]).clamp(0, 255)))
    return out
