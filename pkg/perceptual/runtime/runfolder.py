"""The run folder: what makes a long training run safe to stop, kill and resume, for any model.

:func:`open_run` holds a run folder for one process — an exclusive lock (:class:`RunLock`), a text log
(``train.log``), Ctrl-C / SIGTERM turned into a checkpoint-then-stop (:class:`StopRequest`), cuDNN
set for the run and restored, temporaries of interrupted writes removed — and :class:`Run` reads and
writes its checkpoints (model, optimiser, RNG, iteration, fp16's gradient scaler; atomically) and its
loss logs (``log.csv`` every iteration, read back from the device every ``sync_every`` steps with
a NaN/inf guard; ``val.csv``). :class:`FitOptions` are the options of a run that are not part of its
identity. :func:`perceptual.method.train.fit` is the training procedure built on it.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from perceptual.core import store
from perceptual.runtime import precision

log = logging.getLogger("perceptual.train")


def deadline_from_env() -> float | None:
    """``PERCEPTUAL_DEADLINE`` (seconds since the epoch), set by ``reproduce --deadline``: every
    training process of the command, worker processes too, stops there with a checkpoint."""
    value = os.environ.get("PERCEPTUAL_DEADLINE", "").strip()
    return float(value) if value else None


@dataclass(frozen=True)
class FitOptions:
    """How a run is carried out; none of it changes what is trained (not in the config hash)."""

    checkpoint_every: int | None = None  # None: the config's interval
    sync_every: int = 50  # read loss terms back from the device every N iterations (one host sync)
    stop_after: int | None = None  # end early after this iteration (tests: interruption)
    cuda_graph: bool | None = None  # None: replay each step as a CUDA graph wherever one can run
    compile: bool = False  # the step through torch.compile (no CUDA graph then)
    deterministic: bool = False  # cuDNN's deterministic convolutions (CUDA resumes bit for bit)
    workers: int = 0  # data-loading processes
    progress: bool = True  # tqdm bar
    desc: str = "train"  # the bar's and the log's name for the run
    deadline: float | None = field(default_factory=deadline_from_env)  # time.time() to checkpoint and stop at

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C or SIGTERM: a checkpoint was written and the run stopped; ``exit_code`` = 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class DeadlineReached(TrainingInterrupted):
    """The run's deadline (:attr:`FitOptions.deadline`) passed: a checkpoint was written and the run
    stopped, to be resumed by the same command (exit code 75, EX_TEMPFAIL)."""

    def __init__(self, message: str):
        RuntimeError.__init__(self, message)
        self.exit_code = 75


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read (truncated, empty, not a checkpoint); names the file."""


class RunBusy(RuntimeError):
    """Another process is training in the same run folder; names it."""


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
        ckpt = store.load_torch(path)
        if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
            raise ValueError("no model state and metadata in it")
    except store.UnsafeFile:
        raise  # refused unread: no way out but another file
    except Exception as err:  # noqa: BLE001 (truncated zip, pickle garbage, text, empty: all mean the same)
        reason = (str(err).strip().splitlines() or [""])[0]
        if len(reason) > 120:  # torch's run on ("… This is an internal miniz error. If you …"): cut
            cut = reason[:120]  # at the last full sentence, else at a word boundary, never mid-word
            end = cut.rfind(". ")
            reason = (cut[:end + 1] if end >= 40 else cut.rsplit(" ", 1)[0].rstrip(",;:")) + " …"
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


def keep_rows_until(path: Path, iteration: int) -> None:
    """On resume, drop log rows written after the checkpoint (they will be written again)."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= iteration]
    with store.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(kept)


def append_row(path: Path, row: dict) -> None:
    """Append ``row`` to the CSV table ``path`` (made with ``row``'s columns if new). A table begun by
    an older version keeps its own columns: a resumed run's rows stay aligned with its header."""
    new = not path.is_file()
    columns = list(row)
    if not new:
        with open(path, newline="") as fh:
            columns = next(csv.reader(fh), None) or columns
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


class LossLog:
    """Loss terms of each iteration, kept on the device and read back in one sync (:meth:`flush`):
    written to ``log.csv`` with the wall-clock time the step was issued (``time``, Unix seconds; on a
    GPU, steps are asynchronous, so it says when the host moved on), shown on the progress bar, and
    checked finite (else :class:`TrainingDiverged`, before any checkpoint could record them)."""

    def __init__(self, files: RunFiles, bar, desc: str):
        self.files, self.bar, self.desc = files, bar, desc
        self.pending: list[tuple[int, float, torch.Tensor]] = []  # (iteration, time, terms on the device)
        self.names: list[str] = []
        self.last: dict[str, float] = {}

    def add(self, iteration: int, terms: dict[str, torch.Tensor]) -> None:
        self.names = list(terms)
        self.pending.append((iteration, time.time(), torch.stack([v.detach().float() for v in terms.values()])))

    def flush(self) -> None:
        if not self.pending:
            return
        rows = torch.stack([v for _, _, v in self.pending]).float().cpu().tolist()
        for (i, issued, _), row in zip(self.pending, rows):
            values = dict(zip(self.names, row))
            if not all(math.isfinite(v) for v in row):
                log.error("non-finite loss %s at iteration %d; last good checkpoint kept", values, i)
                raise TrainingDiverged(f"{self.desc}: loss became {values} at iteration {i}; stopped. The last "
                                       f"good checkpoint is {self.files.checkpoint} (lower the learning rate or "
                                       "the loss weights)")
            append_row(self.files.log_csv, {"iteration": i, **values, "time": round(issued, 3)})
        self.bar.update(len(self.pending))
        self.last.update(values)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()})
        self.pending.clear()


@dataclass
class Run:
    """One process's hold on a run folder (from :func:`open_run`): checkpoints and the record of
    each process that trained the run (``meta["segments"]``)."""

    files: RunFiles
    stop: StopRequest
    deterministic: bool
    meta: dict
    start: int = 0
    scaler_state: dict | None = None
    earlier: list = field(default_factory=list)

    def resume(self, model: nn.Module, opt: torch.optim.Optimizer) -> int:
        """Load the checkpoint if there is one (refusing one of another config); the iteration to start at."""
        self.meta["segments"] = []
        if self.files.checkpoint.is_file():
            try:
                ckpt = read_checkpoint(self.files.checkpoint)
            except CheckpointError as err:
                raise CheckpointError(f"{err}; delete it to restart the run from the beginning, or restore it "
                                      "from a backup") from None
            if ckpt["meta"].get("config_hash") != self.meta.get("config_hash"):
                raise RuntimeError(f"{self.files.checkpoint} was written by another config "
                                   f"({ckpt['meta'].get('config_hash')} ≠ {self.meta.get('config_hash')}); "
                                   "use another run folder or delete it")
            model.load_state_dict(ckpt["model"])
            load_optimizer(opt, ckpt["optimizer"])
            torch.set_rng_state(ckpt["rng"])
            self.start, self.scaler_state = ckpt["iteration"], ckpt.get("scaler")
            self.meta["segments"] = list(ckpt["meta"].get("segments", []))
            log.info("resumed from %s at iteration %d", self.files.checkpoint, self.start)
        self.earlier = self.meta["segments"]
        keep_rows_until(self.files.log_csv, self.start - 1)  # rows after the checkpoint will be written again
        keep_rows_until(self.files.val_csv, self.start)
        return self.start

    def stamp(self, done: int, **segment) -> None:
        """This process's segment, as far as it got, after the earlier ones."""
        self.meta["segments"] = self.earlier + [{"iterations": [self.start, done], **segment,
                                                 "deterministic": self.deterministic}]

    def save(self, model: nn.Module, opt: torch.optim.Optimizer, iteration: int, scaler=None) -> None:
        store.atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "rng": torch.get_rng_state(), "iteration": iteration, "meta": self.meta,
                                 **({"scaler": scaler.state_dict()} if scaler is not None else {})},
                                self.files.checkpoint)

    def save_model(self, model: nn.Module) -> Path:
        store.atomic_torch_save({"model": model.state_dict(), "meta": self.meta}, self.files.model)
        return self.files.model


@contextlib.contextmanager
def open_run(run_dir: Path, device: torch.device, meta: dict, deterministic: bool = False) -> Iterator[Run]:
    """Hold ``run_dir`` for this process (see the module's docstring); everything is restored on exit."""
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
        yield Run(files, stop, deterministic, meta)
    except OSError as err:
        if err.errno == 28:  # ENOSPC: one line, in train.log too
            log.error("%s", err)
        raise
    finally:
        precision.restore_cudnn(cudnn)
        stop.restore()
        log.removeHandler(handler)
        handler.close()
        lock.release()
