"""Training: one resumable loop (:func:`fit`) shared by style transfer and super-resolution.

What :func:`fit` guarantees:
- checkpoints every N iterations, written atomically (model, optimiser, RNG, iteration, and
  fp16's gradient scaler);
- an interrupted run resumes to the same parameters as an uninterrupted one: the data position
  is a pure function of (seed, iteration) (:class:`IterationSampler`), so nothing else is needed;
- tqdm progress with the loss terms, a CSV loss log (``log.csv``), a text log (``train.log``),
  validation loss on held-out images (``val.csv``);
- a NaN/inf guard that stops with :class:`TrainingDiverged` and keeps the last good checkpoint;
- the run folder always recovers: one run at a time (a lock file naming the process),
  temporaries of interrupted writes removed, Ctrl-C / SIGTERM write a checkpoint before
  stopping (:class:`TrainingInterrupted`), ``model.pt`` derived from the final checkpoint when a
  finished run lost it, and an unreadable checkpoint named with the two ways out;
- unreadable training or validation photos skipped alike, each warned about once, with a summary;
- CUDA when present, CPU otherwise; mixed precision per ``cfg.precision`` (:mod:`perceptual.runtime.precision`:
  bf16 autocast where the device runs it fast, fp32 master weights, optimiser state and losses),
  channels-last tensors, and loss terms kept on the device and read back every ``sync_every``
  iterations (one host sync per N steps; the CSV log still gets every iteration's values).

Style training (:func:`train_style`, paper §4.1): one network per style image on a folder of
photos resized to 256² (``resize`` rule: ``warp`` = the paper's plain resize; see
:func:`perceptual.core.images.square`), batch 4, Adam 1e-3, 40k iterations.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import signal
import socket
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from perceptual.core import images, store
from perceptual.method import memory
from perceptual.runtime import precision, trainstep
from perceptual.core.config import StyleTrainConfig
from perceptual.core.data import list_images
from perceptual.method.objective import Objective
from perceptual.method.transformer import SRCNN, SRNet, StyleNet
from perceptual.method.vgg import SOURCES, layer_names, load_vgg

log = logging.getLogger("perceptual.method.train")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C or SIGTERM: a checkpoint was written and the run stopped; ``exit_code`` = 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read (truncated, empty, not a checkpoint); names the file."""


class RunBusy(RuntimeError):
    """Another process is training in the same run folder; names it."""


def config_hash(cfg) -> str:
    return hashlib.sha256(json.dumps(store.to_jsonable(cfg), sort_keys=True).encode()).hexdigest()[:10]


def loader_workers(device: torch.device) -> int:
    """Data-loading processes: several on a GPU (decoding would starve it), none on a CPU, where
    they would take cores from the training itself."""
    import os

    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def pick_device(device: str | None = None) -> torch.device:
    """``None``/"auto": CUDA when available (``DEVICE`` env var overrides), else CPU."""
    import os

    device = device or os.environ.get("DEVICE") or "auto"
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---------------------------------------------------------------------------------------------
# data


class IterationSampler(torch.utils.data.Sampler):
    """Yields, for iterations ``start … total-1``, a batch of (index, seed) pairs.

    Epoch e visits the items in ``randperm(n, seed + e)`` order; batch i takes the items at
    positions i·B … i·B+B−1 of the concatenated epochs. The per-item seed drives random crops.
    Everything is a function of (seed, iteration): resuming needs only the iteration.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, total: int):
        if n == 0:
            raise ValueError("no training images")
        self.n, self.b, self.seed, self.start, self.total = n, batch_size, seed, start, total
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def order(self, epoch: int) -> torch.Tensor:
        if self._epoch != epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        return self._perm

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        out = []
        for k in range(iteration * self.b, (iteration + 1) * self.b):
            epoch, pos = divmod(k, self.n)
            out.append((int(self.order(epoch)[pos]), self.seed * 1_000_003 + k))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for it in range(self.start, self.total):
            yield self.batch(it)

    def __len__(self) -> int:
        return self.total - self.start


class CachedImages(Dataset):
    """Training photos, read once, transformed by :meth:`prepare` and rounded to 8-bit values;
    the first ``cache_limit`` stay in memory as uint8. Every visit sees the same pixels, cached
    or not (a resumed run must see what an uninterrupted one saw). Unreadable files are skipped
    with one warning each (the next file stands in), so one bad photo does not stop a long run;
    :attr:`skipped` collects them (training and validation) for the summary at the end."""

    cache_limit = 2000

    def __init__(self, files: Sequence[Path]):
        self.files = list(files)
        self._cache: dict[int, torch.Tensor] = {}
        self.skipped: dict[Path, str] = {}  # unreadable file → error, warned about once

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def image(self, index: int) -> torch.Tensor:
        if index in self._cache:
            return self._cache[index].float()
        for k in range(len(self.files)):
            path = self.files[(index + k) % len(self.files)]
            if path in self.skipped:
                continue
            try:
                img = self.prepare(images.read_image(path)).round().clamp(0, 255)
                break
            except images.ImageError as err:
                self._skip(path, err, "training")
        else:
            raise images.ImageError("no readable training image in the folder")
        if len(self._cache) < self.cache_limit:
            self._cache[index] = img.to(torch.uint8)
        return img

    def __len__(self) -> int:
        return len(self.files)

    def _skip(self, path: Path, err: Exception, role: str) -> None:
        self.skipped[path] = str(err)
        log.warning("skipping %s image (unreadable; not reported again): %s", role, err)

    def stack(self, files: Sequence[Path], finish: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
              ) -> torch.Tensor | None:
        """Held-out ``files`` prepared like training images (then ``finish``), as one batch
        (B, 3, H, W); unreadable ones are skipped like training images. None if none is readable."""
        out = []
        for path in files:
            try:
                out.append(finish(self.prepare(images.read_image(path)).round().clamp(0, 255)))
            except images.ImageError as err:
                self._skip(path, err, "validation")
        if files and not out:
            log.warning("no readable validation image: validation loss is not logged")
        return torch.stack(out) if out else None

    def summary(self) -> str | None:
        """One line naming the unreadable files skipped so far, or None."""
        if not self.skipped:
            return None
        names = [str(p) for p in self.skipped]
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        return f"{len(names)} unreadable image(s) skipped: {', '.join(names[:5])}{more}"


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


class RunFiles:
    """The files of one training run folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.checkpoint = self.root / "checkpoint.pt"  # latest state, every N iterations
        self.model = self.root / "model.pt"  # the finished network with its metadata
        self.log_csv = self.root / "log.csv"  # loss terms per iteration
        self.val_csv = self.root / "val.csv"  # validation loss
        self.text_log = self.root / "train.log"
        self.lock = self.root / "run.lock"  # held while a process trains here


class RunLock:
    """One training process per run folder: an exclusive ``flock`` on ``run.lock``, which
    records the holder's pid and host. The kernel drops the lock when its process dies, so a
    lock file left by a killed run is simply taken over."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, store.new_file_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                os.close(fd)
                raise RunBusy(f"{self.path.parent} is in use by {holder}; wait for it to finish (or stop it), "
                              "or train into another folder") from None
            except OSError as err:  # a filesystem without locks: go on, but say so
                log.warning("cannot lock %s (%s): make sure no other run uses this folder", self.path, err)
                break
            try:  # the holder we waited for may have removed the file: lock the current one
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        stale = _lock_holder(fd)
        if stale != "an unknown process":
            log.info("took over the lock of %s (no longer running)", stale)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _lock_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"process {info['pid']} on {info['host']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "an unknown process"


class StopRequest:
    """SIGINT / SIGTERM handlers for the duration of :func:`fit`: the first signal asks the loop
    to write a checkpoint after the current iteration and stop; a second one stops at once.
    Installed only in the main thread; the previous handlers are restored by :meth:`restore`."""

    signals = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.signals}
        return self

    def _handle(self, signum: int, _frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # second signal: stop now (the last checkpoint stays)
        self.signum = signum
        log.warning("%s: writing a checkpoint after this iteration, then stopping (again to stop at once)",
                    signal.Signals(signum).name)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def interrupted(self, checkpoint: Path, iteration: int) -> TrainingInterrupted:
        name = signal.Signals(self.signum).name
        return TrainingInterrupted(f"stopped by {name} after iteration {iteration}; checkpoint written to "
                                   f"{checkpoint}; run the same command again to resume", self.signum)

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}


def read_checkpoint(path: Path) -> dict:
    """``torch.load`` a checkpoint onto the CPU (its RNG state must stay there: ``torch.set_rng_state``
    takes a CPU byte tensor; ``load_state_dict`` moves weights and optimiser state to their device);
    :class:`CheckpointError` naming the file if it is unreadable."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
            raise ValueError("no model state and metadata in it")
    except Exception as err:  # noqa: BLE001 (truncated zip, pickle garbage, text, empty: all mean the same)
        reason = (str(err).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {reason})") from err
    return ckpt


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)``, keeping ``opt``'s own ``fused``/``capturable`` flags (the
    saved groups carry the writer's: a checkpoint from a CPU would switch fused Adam off on CUDA and
    leave its step counts on the CPU, where a capturable Adam refuses them)."""
    flags = [{k: group.get(k) for k in ("fused", "capturable")} for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, own in zip(opt.param_groups, flags):
        group.update(own)
        if own["fused"] or own["capturable"]:  # their step counts live on the parameters' device
            for param in group["params"]:
                if "step" in opt.state.get(param, {}):
                    opt.state[param]["step"] = opt.state[param]["step"].to(param.device, torch.float32)


def _keep_rows_until(path: Path, iteration: int) -> None:
    """On resume, drop log rows written after the checkpoint (they will be written again)."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= iteration]
    with store.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(kept)


def _append_row(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def fit(model: nn.Module, step: Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]],
        dataset: Dataset, cfg, *, run_dir: Path, meta: dict, val_batch: torch.Tensor | None = None,
        device: torch.device | None = None, workers: int = 0, progress: bool = True, desc: str = "train",
        stop_after: int | None = None, sync_every: int = 50, checkpoint_every: int | None = None,
        cuda_graph: bool | None = None, deterministic: bool = False, compile: bool = False) -> Path:
    """Train ``model`` with Adam on ``step``'s ``"total"``; resumable from ``run_dir``.

    ``cfg`` supplies iterations, batch_size, lr, seed, checkpoint_every, val_every and precision (a
    StyleTrainConfig or SRConfig). Loss terms are read back every ``sync_every`` iterations. Validation is ``step`` on ``val_batch`` in eval mode.
    ``meta`` (config, kind, architecture, …) is stored in every checkpoint; a checkpoint whose
    ``meta["config_hash"]`` differs is refused. ``stop_after`` ends early (tests: interruption).
    ``checkpoint_every`` overrides ``cfg.checkpoint_every`` (not part of the run's identity).
    ``cuda_graph``: after three eager iterations, each step is one replayed CUDA graph
    (:mod:`perceptual.runtime.trainstep`; CUDA, bf16 or fp32; the same kernels, so not part of the identity);
    ``None``: wherever one can run, going on eagerly (logged, recorded) if the step cannot be captured.
    ``deterministic``: cuDNN's deterministic convolutions instead of autotuned ones (CUDA; slower),
    also where the caller has set ``torch.backends.cudnn.deterministic`` (kept, recorded; the
    caller's flags are restored at the end). Autotuning picks kernels per process, and some are not
    bit-reproducible, so on CUDA a resumed run equals an uninterrupted one bit for bit only with it;
    on a CPU it always does.
    ``compile``: ``step`` through ``torch.compile`` (no CUDA graph then; compiling takes minutes on a
    CPU): what ``perceptual bench --compile`` measures; recorded per segment.
    Returns ``model.pt`` when finished, else the checkpoint. Ctrl-C / SIGTERM write a checkpoint
    and raise :class:`TrainingInterrupted`; a second process on the same folder gets :class:`RunBusy`.
    """
    if checkpoint_every:
        cfg = replace(cfg, checkpoint_every=checkpoint_every)
    iterations, seed = cfg.iterations, cfg.seed
    device = device or pick_device()
    prec, graph = trainstep.plan(cfg.precision, device, cuda_graph, compile)  # refused before anything is made
    files = RunFiles(Path(run_dir))
    if files.root.exists() and not files.root.is_dir():
        raise NotADirectoryError(f"{files.root}: is a file; the run folder (--out) must be a folder")
    files.root.mkdir(parents=True, exist_ok=True)
    lock = RunLock(files.lock).acquire()
    handler = logging.FileHandler(files.text_log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    stop = StopRequest().install()
    deterministic = deterministic or torch.backends.cudnn.deterministic  # asked for, or set by the caller
    cudnn = precision.set_cudnn(device, deterministic)  # fixed sizes: autotuned on CUDA unless deterministic
    try:
        for stale in store.remove_stale_temporaries(files.root):
            log.info("removed %s (left by an interrupted write)", stale)
        torch.manual_seed(seed)
        precision.channels_last(model.to(device)).train()
        opt = precision.adam(model.parameters(), cfg.lr, device, capturable=graph)

        def save_model() -> None:
            store.atomic_torch_save({"model": model.state_dict(), "meta": meta}, files.model)

        start, scaler_state = 0, None
        meta["segments"] = []  # one entry per process that trained this run (see stamp below)
        if files.checkpoint.is_file():
            try:
                ckpt = read_checkpoint(files.checkpoint)
            except CheckpointError as err:
                raise CheckpointError(f"{err}; delete it to restart the run from the beginning, or restore it "
                                      "from a backup") from None
            if ckpt["meta"].get("config_hash") != meta.get("config_hash"):
                raise RuntimeError(f"{files.checkpoint} was written by another config "
                                   f"({ckpt['meta'].get('config_hash')} ≠ {meta.get('config_hash')}); "
                                   "use another run folder or delete it")
            model.load_state_dict(ckpt["model"])
            load_optimizer(opt, ckpt["optimizer"])
            torch.set_rng_state(ckpt["rng"])
            start, scaler_state = ckpt["iteration"], ckpt.get("scaler")
            meta["segments"] = list(ckpt["meta"].get("segments", []))
            log.info("resumed from %s at iteration %d", files.checkpoint, start)
        else:
            log.info("start: %s, %d iterations on %s, precision %s", desc, iterations, device, prec)
        _keep_rows_until(files.log_csv, start - 1)  # rows after the checkpoint will be written again
        _keep_rows_until(files.val_csv, start)
        if start >= iterations:
            if not files.model.is_file():  # finished, but stopped before model.pt was written
                save_model()
                log.info("wrote %s from the final checkpoint", files.model)
            return files.model
        loader = DataLoader(dataset, batch_sampler=IterationSampler(len(dataset), cfg.batch_size, seed, start, iterations),
                            num_workers=workers, pin_memory=device.type == "cuda",
                            prefetch_factor=4 if workers else None)  # decoded photos are cached per worker
        end = min(iterations, stop_after) if stop_after else iterations
        bar = tqdm(total=end - start, initial=0, desc=desc, disable=not progress)
        pending: list[tuple[int, torch.Tensor]] = []  # (iteration, stacked loss terms on the device)
        names: list[str] = []
        last: dict[str, float] = {}
        train_step = trainstep.trainer(model, torch.compile(step) if compile else step, opt, device, prec, graph,
                                       # a fallback for an automatic graph only: one asked for fails loudly
                                       fallback=log.warning if cuda_graph is None else None)
        eager_fp16 = isinstance(train_step, trainstep.EagerStep) and train_step.scaler.is_enabled()
        scaler = train_step.scaler if eager_fp16 else None  # fp16's gradient scaler, checkpointed
        if scaler is not None and scaler_state:
            scaler.load_state_dict(scaler_state)  # its scale and growth count: resumed fp16 steps scale alike
        earlier, machine = meta["segments"], store.machine_label(store.hardware(device))

        def stamp(done: int) -> None:
            """This process's segment, as far as it got, after the earlier ones; ``cuda_graph``: a
            graph was captured and replayed (False where the capture failed and training went on)."""
            replayed = isinstance(train_step, trainstep.GraphedStep) and train_step.input is not None
            meta["segments"] = earlier + [{"iterations": [start, done], "device": str(device), "hardware": machine,
                                           "precision": prec, "cuda_graph": replayed,
                                           "deterministic": deterministic, "compiled": compile}]

        def flush() -> None:
            """Read the pending loss terms back (one host sync), log them, stop on NaN/inf."""
            if not pending:
                return
            rows = torch.stack([v for _, v in pending]).float().cpu().tolist()
            for (i, _), row in zip(pending, rows):
                values = dict(zip(names, row))
                if not all(math.isfinite(v) for v in row):
                    log.error("non-finite loss %s at iteration %d; last good checkpoint kept", values, i)
                    raise TrainingDiverged(f"{desc}: loss became {values} at iteration {i}; stopped. The last "
                                           f"good checkpoint is {files.checkpoint} (lower the learning rate or "
                                           "the loss weights)")
                _append_row(files.log_csv, {"iteration": i, **values})
            bar.update(len(pending))
            last.update(values)
            bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()})
            pending.clear()

        def save(it: int) -> None:
            stamp(it)
            store.atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                     "rng": torch.get_rng_state(), "iteration": it, "meta": meta,
                                     **({"scaler": scaler.state_dict()} if scaler is not None else {})},
                                    files.checkpoint)

        done = start
        for it, batch in enumerate(loader, start=start):
            if it >= end:
                break
            batch = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            terms = train_step(batch)  # forward, backward and Adam (one replay with a CUDA graph)
            names = list(terms)
            pending.append((it, torch.stack([v.detach().float() for v in terms.values()])))
            done = it + 1
            validate = val_batch is not None and cfg.val_every and (done % cfg.val_every == 0 or done == iterations)
            checkpoint = done % cfg.checkpoint_every == 0 or done == end or stop.requested
            if len(pending) >= sync_every or validate or checkpoint:
                flush()  # a checkpoint is written only after its losses were seen to be finite
            if validate:
                with precision.autocast(device, prec):
                    val = _validate(model, step, val_batch, device)
                _append_row(files.val_csv, {"iteration": done, "val_total": val})
            if checkpoint:
                save(done)
                log.info("iteration %d: %s; checkpoint written", done, {k: f"{v:.4g}" for k, v in last.items()})
            if stop.requested and done < iterations:
                raise stop.interrupted(files.checkpoint, done)
        flush()
        bar.close()
        model.eval()
        if done >= iterations:
            log.info("finished %d iterations", iterations)
            save_model()
        return files.model if files.model.is_file() else files.checkpoint
    finally:
        precision.restore_cudnn(cudnn)
        stop.restore()
        skipped = dataset.summary() if isinstance(dataset, CachedImages) else None
        if skipped:
            log.warning(skipped)
        log.removeHandler(handler)
        handler.close()
        lock.release()


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
    """A trained network from ``model.pt`` or ``checkpoint.pt``, with its metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint" + (" (a folder)" if path.is_dir() else ""))
    try:
        ckpt = read_checkpoint(path)
        meta = ckpt["meta"]
        model = BUILDERS[meta["kind"]](**meta["arch"])
        model.load_state_dict(ckpt["model"])
    except CheckpointError as err:
        raise ValueError(f"{err}: give the model.pt (or checkpoint.pt) of a training run") from None
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: not a perceptual checkpoint ({type(err).__name__}: {err})") from err
    return model.to(device).eval(), meta


# ---------------------------------------------------------------------------------------------
# style transfer


def style_target(path: Path, style_size: int) -> torch.Tensor:
    """The style image, resized so its longer side is ``style_size`` (authors' code)."""
    return images.resize_longer(images.read_image(path), style_size)[None]  # (1, 3, h, w)


def train_style(cfg: StyleTrainConfig, style_file: Path, train_dirs: Sequence[Path], run_dir: Path,
                device: str | torch.device | None = None, progress: bool = True, workers: int = 0,
                stop_after: int | None = None, checkpoint_every: int | None = None,
                cuda_graph: bool | None = None, deterministic: bool = False, compile: bool = False) -> Path:
    """Train one style network; returns the path of ``model.pt`` (or the checkpoint if stopped).
    Sizes that cannot fit into memory are refused first (:class:`perceptual.method.memory.TooLarge`)."""
    device = pick_device(device) if not isinstance(device, torch.device) else device
    prec, _ = trainstep.plan(cfg.precision, device, cuda_graph, compile)  # refused before the loss network loads
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

    return fit(model, objective.train_step, data, cfg, run_dir=run_dir, meta=meta, val_batch=val, device=device, workers=workers,
               progress=progress, desc=f"style {cfg.style}", stop_after=stop_after,
               checkpoint_every=checkpoint_every, cuda_graph=cuda_graph, deterministic=deterministic,
               compile=compile)
