"""Training (paper §3, §4.1): :func:`fit`, the procedure shared by style transfer and
super-resolution — Adam on the step's total loss, checkpoints, validation — and :func:`train_style`.

What makes a run safe to stop and resume is the runtime's: the run folder (lock, signals, logs,
atomic checkpoints, the NaN/inf guard; :mod:`perceptual.runtime.runfolder`), a data order that is a
pure function of (seed, iteration) (:mod:`perceptual.runtime.batches`), and one training step,
eager, compiled or replayed as a CUDA graph, in the precision the device runs fast
(:mod:`perceptual.runtime.trainstep`, :mod:`perceptual.runtime.precision`).

Style training (:func:`train_style`, paper §4.1): one network per style image on a folder of
photos resized to 256² (``resize`` rule: ``warp`` = the paper's plain resize; see
:func:`perceptual.core.images.square`), batch 4, Adam 1e-3, 40k iterations.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from perceptual.core import images, store
from perceptual.method import memory
from perceptual.runtime import precision, runfolder, trainstep
from perceptual.runtime.batches import CachedImages, IterationSampler, prefetch
from perceptual.runtime.runfolder import (CheckpointError, FitOptions, RunBusy, RunLock, TrainingDiverged,  # noqa: F401
                                          TrainingInterrupted, load_optimizer, read_checkpoint)
from perceptual.core.config import StyleTrainConfig
from perceptual.core.data import list_images
from perceptual.method.objective import Objective
from perceptual.method.transformer import SRCNN, SRNet, StyleNet
from perceptual.method.vgg import SOURCES, layer_names, load_vgg

log = logging.getLogger("perceptual.train")  # train.log (runfolder) records it


def config_hash(cfg) -> str:
    return hashlib.sha256(json.dumps(store.to_jsonable(cfg), sort_keys=True).encode()).hexdigest()[:10]


def loader_workers(device: torch.device) -> int:
    """Data-loading processes: several on a GPU (decoding would starve it), none on a CPU, where
    they would take cores from the training itself. ``PERCEPTUAL_LOADER_WORKERS`` overrides it (set
    by :func:`perceptual.study.jobs.run_local` when several jobs share the machine's cores)."""
    if os.environ.get("PERCEPTUAL_LOADER_WORKERS", "").strip():
        return int(os.environ["PERCEPTUAL_LOADER_WORKERS"])
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def pick_device(device: str | None = None) -> torch.device:
    """``None``/"auto": CUDA when available (``DEVICE`` env var overrides), else CPU."""

    device = device or os.environ.get("DEVICE") or "auto"
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---------------------------------------------------------------------------------------------
# data


class SquareImages(CachedImages):
    """Photos resized to size×size (style transfer); items are (index, seed) pairs."""

    def __init__(self, files: Sequence[Path], size: int, rule: str):
        super().__init__(files)
        self.size, self.rule = size, rule
        self.cache_limit = 4000 if size <= 288 else 0  # small sets stay in memory

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        return images.square(image, self.size, self.rule)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        return self.image(item[0])


def split_files(dirs: Sequence[Path], val_images: int) -> tuple[list[Path], list[Path]]:
    """All images under ``dirs``; the last ``val_images`` (sorted by path) are held out."""
    missing = [str(d) for d in dirs if not Path(d).is_dir()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such folder of training images")
    files = [f for d in dirs for f in list_images(Path(d))]
    if len(files) <= val_images:
        raise ValueError(f"need more than {val_images} training images under {', '.join(map(str, dirs))}, "
                         f"found {len(files)}")
    return (files[:-val_images], files[-val_images:]) if val_images else (files, [])


# ---------------------------------------------------------------------------------------------
# the loop


def fit(model: nn.Module, step: Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]],
        dataset: Dataset, cfg, *, run_dir: Path, meta: dict, val_batch: torch.Tensor | None = None,
        device: torch.device | None = None, options: FitOptions = FitOptions()) -> Path:
    """Train ``model`` with Adam on ``step``'s ``"total"`` (paper §3: "Adam with learning rate 1e-3");
    resumable from ``run_dir``. Returns ``model.pt`` when finished, else the checkpoint.

    ``cfg`` supplies iterations, batch_size, lr, seed, checkpoint_every, val_every and precision (a
    StyleTrainConfig or SRConfig); ``options`` how the run is carried out (:class:`FitOptions`: the
    checkpoint interval, CUDA graph or ``torch.compile``, deterministic cuDNN, host syncs, an early
    stop). ``meta`` (config, kind, architecture, …) is stored in every checkpoint; a checkpoint of
    another ``meta["config_hash"]`` is refused. Validation is ``step`` on ``val_batch`` in eval mode.
    The run folder's safety (lock, signals, logs, atomic checkpoints) is :mod:`perceptual.runtime.runfolder`;
    the step (eager, compiled, or replayed as a CUDA graph) is :mod:`perceptual.runtime.trainstep`.
    """
    o = options
    cfg = replace(cfg, checkpoint_every=o.checkpoint_every) if o.checkpoint_every else cfg
    device = device or pick_device()
    prec, graph = trainstep.plan(cfg.precision, device, o.cuda_graph, o.compile)  # refused before anything is made
    try:
        with runfolder.open_run(run_dir, device, meta, o.deterministic) as run:
            torch.manual_seed(cfg.seed)
            precision.channels_last(model.to(device)).train()
            opt = precision.adam(model.parameters(), cfg.lr, device, capturable=graph)
            start = run.resume(model, opt)
            log.info("start: %s, %d iterations on %s, precision %s", o.desc, cfg.iterations, device, prec)
            if start >= cfg.iterations:
                return run.files.model if run.files.model.is_file() else run.save_model(model)  # lost model.pt
            end = min(cfg.iterations, o.stop_after) if o.stop_after else cfg.iterations
            loader = DataLoader(dataset, batch_sampler=IterationSampler(len(dataset), cfg.batch_size, cfg.seed, start,
                                                                        cfg.iterations),
                                num_workers=o.workers, pin_memory=device.type == "cuda",
                                prefetch_factor=4 if o.workers else None)  # decoded photos are cached per worker
            train_step = trainstep.trainer(model, torch.compile(step) if o.compile else step, opt, device, prec, graph,
                                           fallback=log.warning if o.cuda_graph is None else None)  # asked for: fails
            scaler = trainstep.fp16_scaler(train_step, run.scaler_state)  # checkpointed with the rest
            losses = runfolder.LossLog(run.files, tqdm(total=end - start, desc=o.desc, disable=not o.progress), o.desc)
            done = start
            for it, batch in enumerate(prefetch(loader) if not o.workers else loader, start=start):
                if it >= end:
                    break
                batch = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                losses.add(it, train_step(batch))  # forward, backward and Adam (one replay with a CUDA graph)
                done = it + 1
                validate = val_batch is not None and cfg.val_every and (done % cfg.val_every == 0 or done == cfg.iterations)
                late = o.past_deadline()  # a command with a time limit: checkpoint now, resume later
                checkpoint = done % cfg.checkpoint_every == 0 or done == end or run.stop.requested or late
                if len(losses.pending) >= o.sync_every or validate or checkpoint:
                    losses.flush()  # a checkpoint is written only after its losses were seen to be finite
                if validate:
                    with precision.autocast(device, prec):
                        runfolder.append_row(run.files.val_csv, {"iteration": done, "val_total":
                                                                 _validate(model, step, val_batch, device)})
                if checkpoint:
                    run.stamp(done, device=str(device), hardware=store.machine_label(store.hardware(device)),
                              precision=prec, cuda_graph=trainstep.replayed(train_step), compiled=o.compile)
                    run.save(model, opt, done, scaler)
                    log.info("iteration %d: %s; checkpoint written", done, {k: f"{v:.4g}" for k, v in losses.last.items()})
                if run.stop.requested and done < cfg.iterations:
                    raise run.stop.interrupted(run.files.checkpoint, done)
                if late and done < cfg.iterations:
                    log.info("deadline reached after iteration %d; checkpoint written", done)
                    raise runfolder.DeadlineReached(f"{o.desc}: deadline reached after iteration {done}; checkpoint "
                                                    f"written to {run.files.checkpoint}; run the same command again "
                                                    "to resume")
            losses.flush()
            losses.bar.close()
            model.eval()
            if done >= cfg.iterations:
                log.info("finished %d iterations", cfg.iterations)
                return run.save_model(model)
            return run.files.checkpoint
    finally:
        skipped = dataset.summary() if isinstance(dataset, CachedImages) else None
        if skipped:
            log.warning(skipped)


def _validate(model: nn.Module, step, batch: torch.Tensor, device: torch.device) -> float:
    model.eval()
    try:
        with torch.no_grad():
            return float(step(model, batch.to(device))["total"])
    finally:
        model.train()


# ---------------------------------------------------------------------------------------------
# checkpoints that carry everything needed to use them

BUILDERS = {"style": StyleNet, "sr": SRNet, "srcnn": SRCNN}


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A trained network from ``model.pt`` or ``checkpoint.pt``, with its metadata; checked before
    anything is allocated (:func:`check_model`). Files that would run code are refused unread
    (:func:`perceptual.core.store.load_torch`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint" + (" (a folder)" if path.is_dir() else ""))
    try:
        ckpt = read_checkpoint(path)
        meta = ckpt["meta"]
        model = check_model(ckpt["model"], meta, path)
        model.load_state_dict(ckpt["model"])
    except CheckpointError as err:
        raise ValueError(f"{err}: give the model.pt (or checkpoint.pt) of a training run") from None
    except (KeyError, TypeError, RuntimeError) as err:
        raise ValueError(f"{path}: not a perceptual checkpoint ({type(err).__name__}: {err})") from None
    return model.to(device).eval(), meta


def check_model(state: dict, meta: dict, path: Path) -> nn.Module:
    """The network ``meta`` declares, built only once the file is known to hold it: its
    architecture first on PyTorch's ``meta`` device (no memory), then
    every state-dict key and shape as that architecture has them, every weight finite, and its
    parameters within this machine's memory (NaN/inf weights would write black images). ValueError naming the file."""
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind not in BUILDERS or not isinstance(meta.get("arch"), dict):
        raise ValueError(f"{path}: not a perceptual model (kind {kind!r}; expected one of {', '.join(BUILDERS)})")
    try:
        with torch.device("meta"):
            shapes = BUILDERS[kind](**meta["arch"]).state_dict()
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: its architecture {meta['arch']} cannot be built ({err})") from None
    if not isinstance(state, dict) or set(state) != set(shapes):
        missing, extra = sorted(set(shapes) - set(state or {})), sorted(set(state or {}) - set(shapes))
        raise ValueError(f"{path}: its weights do not match its declared architecture (missing {missing[:3]}, "
                         f"unexpected {extra[:3]})")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != shapes[name].shape:
            raise ValueError(f"{path}: weight {name} has shape {tuple(getattr(value, 'shape', ()))}, its declared "
                             f"architecture {tuple(shapes[name].shape)}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{path}: weight {name} holds NaN or infinite values; the network is unusable "
                             "(retrain it, or use an earlier checkpoint)")
    need = sum(v.numel() * v.element_size() for v in shapes.values())
    have, where = memory.machine_bytes(torch.device("cpu"))
    if need > have // 4:
        raise ValueError(f"{path}: declares a {kind} network of {memory.gib(need)}, more than a quarter of {where}; "
                         "not loaded")
    return BUILDERS[kind](**meta["arch"])


# ---------------------------------------------------------------------------------------------
# style transfer


def style_target(path: Path, style_size: int) -> torch.Tensor:
    """The style image, resized so its longer side is ``style_size`` (authors' code)."""
    return images.resize_longer(images.read_image(path), style_size)[None]  # (1, 3, h, w)


def train_style(cfg: StyleTrainConfig, style_file: Path, train_dirs: Sequence[Path], run_dir: Path,
                device: str | torch.device | None = None, **options) -> Path:
    """Train one style network; returns the path of ``model.pt`` (or the checkpoint if stopped).
    ``options``: :class:`FitOptions` fields (``progress``, ``stop_after``, ``cuda_graph``, …).
    Sizes that cannot fit into memory are refused first (:class:`perceptual.method.memory.TooLarge`)."""
    opts = replace(FitOptions(**options), desc=f"style {cfg.style}")
    device = pick_device(device) if not isinstance(device, torch.device) else device
    prec, _ = trainstep.plan(cfg.precision, device, opts.cuda_graph, opts.compile)  # refused before the loss network loads
    layers = cfg.loss.content_layers + cfg.loss.style_layers
    deepest = max(layers, key=layer_names(SOURCES[cfg.loss.network].depth).index)
    memory.check(memory.style_training_bytes(asdict(cfg.net), cfg.loss.network, deepest, cfg.image_size,
                                             cfg.batch_size),
                 device, f"image size {cfg.image_size} with batch size {cfg.batch_size}")
    net = precision.channels_last(load_vgg(cfg.loss.network, device, pool=cfg.loss.pool))
    objective = Objective(net, cfg.loss, style_target(style_file, cfg.style_size).to(device))
    train_files, val_files = split_files(train_dirs, cfg.val_images)
    data = SquareImages(train_files, cfg.image_size, cfg.resize)
    val = data.stack(val_files)
    torch.manual_seed(cfg.seed)  # the initial weights are part of the run's identity
    model = StyleNet(**asdict(cfg.net))
    meta = {"kind": "style", "arch": model.arch, "style": cfg.style, "style_file": str(style_file),
            "loss_network": cfg.loss.network, "config_hash": config_hash(cfg),
            "provenance": store.provenance(cfg, cfg.seed, cfg.loss.network, device,
                                           precision=prec, train_images=len(train_files),
                                           val_images=len(val_files))}

    return fit(model, objective.train_step, data, cfg, run_dir=run_dir, meta=meta, val_batch=val, device=device,
               options=opts)
