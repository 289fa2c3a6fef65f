"""Writing results safely, and recording what produced them.

Every file is written to a temporary sibling and renamed into place, so an interrupted run
never leaves a half-written file. Every table gets a ``.meta.json`` beside it with the config,
seed, code version, loss network and hardware (:func:`provenance`).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import hashlib
import json
import os
import pickle
import platform
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from perceptual.core import paths


TMP_SUFFIX = ".tmp"  # temporaries are ``.<name>.<random>.tmp`` beside their target
TMP_NAME_ROOM = 200  # characters of the target's name kept in a temporary's (names are ≤ 255 bytes)


class DiskFull(OSError):
    """A write failed because the disk is full; the message names the file and the free space."""

    def __init__(self, path: Path):
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there"
        except OSError:
            free = "free space unknown"
        super().__init__(errno.ENOSPC, f"{path}: not written, the disk is full ({free}); free some space and "
                                       "run the same command again")

    def __str__(self) -> str:
        return self.strerror


def _is_disk_full(err: BaseException) -> bool:
    """ENOSPC, or torch.save's way of saying it ("[enforce fail at inline_container.cc…] unexpected pos")."""
    return (isinstance(err, OSError) and err.errno == errno.ENOSPC) or (
        isinstance(err, RuntimeError) and ("unexpected pos" in str(err) or "No space left" in str(err)))


def new_file_mode() -> int:
    """The permissions ``open()`` would give a new file: 0o666 minus the process umask
    (``mkstemp`` alone creates 0o600)."""
    try:  # Linux ≥ 4.7: read it without changing it (os.umask is process-wide)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target folder; rename it onto ``path`` on success.

    The file gets the usual permissions (:func:`new_file_mode`). ``overwrite=False`` never
    replaces an existing ``path``: :class:`FileExistsError` instead, checked at the rename (a
    hard link), so a file that appeared meanwhile is kept too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:TMP_NAME_ROOM]}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, new_file_mode())
        try:
            yield Path(tmp)
        except (OSError, RuntimeError) as err:
            if _is_disk_full(err) and not isinstance(err, DiskFull):
                raise DiskFull(path) from None
            raise
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(Path(tmp), path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _link_new(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` exists (atomically where hard links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: exists; not replaced") from None
    except OSError:  # a filesystem without hard links: check, then rename
        if path.exists():
            raise FileExistsError(f"{path}: exists; not replaced") from None
        os.replace(tmp, path)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries an interrupted :func:`atomic_path` left in ``folder`` (call only
    where nothing else writes: e.g. a locked run folder). Returns what was removed."""
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples, paths and numpy scalars → plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


def code_version() -> str:
    """``git describe`` of the checkout (with ``-dirty``), else the package version."""
    if paths.ROOT is not None:
        try:
            out = subprocess.run(["git", "-C", str(paths.ROOT), "describe", "--always", "--dirty", "--tags"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    from perceptual import __version__

    return __version__


def _hash_sources() -> str:
    digest = hashlib.sha256()
    for f in sorted(paths.PACKAGE.rglob("*.py")):
        digest.update(f.relative_to(paths.PACKAGE).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


_SOURCE_HASH = _hash_sources()  # at import: the code this process runs, even if files change later


def source_hash() -> str:
    """sha256 (first 12 hex digits) of the package's Python sources as this process imported them:
    names the code exactly where ``git describe`` says ``-dirty`` or the checkout's history is
    not there (a copied tree)."""
    return _SOURCE_HASH


def hardware(device: str | torch.device | None = None) -> dict[str, Any]:
    """CPU, GPU and software versions of the machine running now."""
    info: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a plain string: TorchVersion is not a weights-only type
        "platform": platform.platform(),
    }
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        # what "fp32" means there: PyTorch lets cuDNN convolutions run in TF32 by default (Ampere on)
        info["tf32_convolutions"] = torch.backends.cudnn.allow_tf32
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    info["device"] = str(dev) if dev is not None else "cpu"
    return info


def machine_label(hw: dict[str, Any]) -> str:
    """One line for a :func:`hardware` record: the GPU's name, else the CPU's with its threads."""
    return hw.get("gpu") or (f"{hw.get('cpu')} ({hw.get('cpu_threads')} threads)" if hw else "?")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(config: Any = None, seed: int | None = None, loss_network: str | None = None,
               device: str | torch.device | None = None, **extra: Any) -> dict[str, Any]:
    """The record stored beside every result."""
    return to_jsonable({
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "source_hash": source_hash(),
        "config": config,
        "seed": seed,
        "loss_network": loss_network,
        "hardware": hardware(device),
        **extra,
    })


def write_table(frame, path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write a pandas DataFrame as CSV plus ``<name>.meta.json``, both atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    atomic_write_text(meta_path(path), json.dumps(meta, indent=2, sort_keys=True))
    return path


def meta_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".meta.json")


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(meta_path(path).read_text())


def read_meta_or_none(path: str | os.PathLike) -> dict[str, Any] | None:
    """The provenance stored in a table's meta file or a model checkpoint, else None."""
    path = Path(path)
    if path.suffix == ".pt" and path.is_file():
        return to_jsonable(load_torch(path).get("meta"))
    try:
        return read_meta(path)
    except (OSError, json.JSONDecodeError):
        return None


class UnsafeFile(ValueError):
    """A model or checkpoint file that would run code to load; refused before any of it runs."""


# Globals the project's own files may hold beyond weights_only's tensors, numbers, strings, lists
# and dicts: files written before provenance stored torch's version as a plain string hold a
# TorchVersion (a str subclass; loading it runs nothing).
SAFE_GLOBALS = (torch.torch_version.TorchVersion,)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: the one way every model, checkpoint and published
    network is read. Anything but weights and plain metadata is refused with :class:`UnsafeFile`
    naming the file and what it asked for — a pickle can run any code, and model files are what
    users share."""
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?:global|GLOBAL)[: ]+(?:GLOBAL )?([A-Za-z_][\w.]*)", str(err))
        what = found.group(1) if found else "an object that is not weights"
        raise UnsafeFile(f"{path}: refused, not loaded: it holds {what}, which could run code on this machine; "
                         "model files may hold only weights and plain metadata") from None
