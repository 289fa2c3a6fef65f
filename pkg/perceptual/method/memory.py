"""Will a training run fit in memory? An estimate made before anything is allocated.

The estimate: every module output of one forward pass of the trained network and of the loss
network at the run's size and batch, counted on PyTorch's ``meta`` device (shapes only: no
memory, no time), as float32, times :data:`BACKWARD_FACTOR` (autograd keeps the forward
activations and makes gradients of the same size). It is rough — meant to refuse sizes that
cannot fit at all (``--patch 5000``: hundreds of GiB) before a long setup and an OOM kill, not
to predict the peak. Compared with the machine's physical RAM (CPU) or the GPU's memory.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Callable

import torch
from torch import nn

from perceptual.core import paths, store
from perceptual.method.transformer import SRCNN, SRNet, StyleNet
from perceptual.method.vgg import SOURCES, VGGFeatures

BACKWARD_FACTOR = 2.0  # forward activations kept for backward + their gradients
BYTES = 4  # float32


class TooLarge(ValueError):
    """The requested sizes cannot fit into this machine's memory; the message says what to lower."""


def forward_elements(run: Callable[[], object], model: nn.Module) -> int:
    """Number of elements in every leaf module's output while ``run()`` executes (meta tensors)."""
    total = 0

    def hook(_module, _inputs, output):
        nonlocal total
        outs = output.values() if isinstance(output, dict) else output if isinstance(output, tuple) else (output,)
        total += sum(o.numel() for o in outs if isinstance(o, torch.Tensor))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total


def _loss_network_elements(network: str, layer: str, shape: tuple[int, ...]) -> int:
    src = SOURCES[network]
    with torch.device("meta"):
        net = VGGFeatures(src.depth, src.preprocessing)
        x = torch.empty(shape)
    return forward_elements(lambda: net(x, [layer]), net) + 2 * x.numel()  # + preprocessing copies


def _cached(fn: Callable[..., int]) -> Callable[..., int]:
    """Remember an estimate on disk (``<cache>/memory-estimates.json``), keyed by its arguments and
    the package's source hash: running the networks on the meta device costs seconds at the start of
    every command (its first use loads PyTorch's meta kernels), the same answer each time."""

    @functools.wraps(fn)
    def cached(*args) -> int:
        file = paths.cache_dir() / "memory-estimates.json"
        key = json.dumps([fn.__name__, store.source_hash(), *args], sort_keys=True, default=str)
        try:
            known = json.loads(file.read_text())
        except (OSError, ValueError):
            known = {}
        if key not in known:
            known[key] = fn(*args)
            try:
                store.atomic_write_text(file, json.dumps(known))
            except OSError:
                pass  # a read-only cache: estimate again next time
        return int(known[key])

    return cached


@_cached
def style_training_bytes(arch: dict, network: str, deepest_layer: str, image_size: int, batch: int) -> int:
    """Estimated bytes for one style-training step: StyleNet + loss network at image_size²."""
    shape = (batch, 3, image_size, image_size)
    with torch.device("meta"):
        model = StyleNet(**arch)
        x = torch.empty(shape)
    n = forward_elements(lambda: model(x), model) + _loss_network_elements(network, deepest_layer, shape)
    return int(n * BYTES * BACKWARD_FACTOR)


@_cached
def sr_training_bytes(method: str, factor: int, patch: int, batch: int, network: str | None,
                      layer: str = "relu2_2") -> int:
    """Estimated bytes for one super-resolution step: the network (+ the loss network for ``feat``)."""
    hr = (batch, 3, patch, patch)
    with torch.device("meta"):
        model: nn.Module = SRCNN() if method == "srcnn" else SRNet(factor)
        x = torch.empty(hr if method == "srcnn" else (batch, 3, patch // factor, patch // factor))
    n = forward_elements(lambda: model(x), model)
    if network is not None:
        n += _loss_network_elements(network, layer, hr)  # the target's pass runs without autograd
    return int(n * BYTES * BACKWARD_FACTOR)


def machine_bytes(device: torch.device) -> tuple[int, str]:
    """(bytes, description) of the memory a run on ``device`` has: GPU memory, else physical RAM."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(device).total_memory, f"the GPU ({device})"
    try:
        import psutil

        return psutil.virtual_memory().total, "this machine's RAM"
    except ImportError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's RAM"


def gib(n: int) -> str:
    return f"{n / 2 ** 30:.1f} GiB"


def check(need: int, device: torch.device, what: str) -> None:
    """Raise :class:`TooLarge` (one line, naming ``what`` to lower) when ``need`` bytes exceed
    the device's memory."""
    have, where = machine_bytes(device)
    if need > have:
        raise TooLarge(f"{what} needs ≈ {gib(need)} for training, more than {where} ({gib(have)}): "
                       "choose a smaller size or batch")
