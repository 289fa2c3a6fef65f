"""Writing results safely, and recording what produced them.

Every file is written to a temporary sibling and renamed into place, so an interrupted run
never leaves a half-written file. Every table gets a ``.meta.json`` beside it with the config,
seed, code version, loss network and hardware (:func:`provenance`).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from . import paths


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target folder; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    from . import __version__

    return __version__


def hardware(device: str | torch.device | None = None) -> dict[str, Any]:
    """CPU, GPU and software versions of the machine running now."""
    info: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    info["device"] = str(dev) if dev is not None else "cpu"
    return info


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
        return to_jsonable(torch.load(path, map_location="cpu", weights_only=False).get("meta"))
    try:
        return read_meta(path)
    except (OSError, json.JSONDecodeError):
        return None
