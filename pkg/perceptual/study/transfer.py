"""Moving a study's results off a machine lent for minutes, whose way back holds a few files of
bounded size (e.g. at most 8 files of 16 MiB: see README, "A GPU window").

:func:`pack` writes a folder as one gzipped tar split into numbered parts, plus a manifest with the
whole stream's sha256, refusing — before writing anything — when it would need more files or
larger ones than allowed. :func:`unpack` checks the hash and extracts with tarfile's ``data``
filter (no absolute paths, no ``..``, no links out of the destination).
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from perceptual.core import store

MIB = 2 ** 20


class TooBig(ValueError):
    """The folder does not fit into the files allowed; the message says by how much."""


def _tar_bytes(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=str(Path(folder.name) / path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def pack(folder: str | Path, out: str | Path, max_files: int = 8, max_bytes: int = 16 * MIB) -> list[Path]:
    """``folder`` → ``out/<name>.tgz.NN`` parts and ``out/<name>.manifest.json``; the written paths.
    :class:`TooBig` (nothing written) if that needs more than ``max_files`` files (the manifest is one)
    or ``max_bytes`` a file."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder to pack")
    data = _tar_bytes(folder)
    parts = [data[i:i + max_bytes] for i in range(0, len(data), max_bytes)] or [b""]
    if len(parts) + 1 > max_files:
        raise TooBig(f"{folder}: {len(data) / MIB:.1f} MiB compressed needs {len(parts)} parts of "
                     f"{max_bytes / MIB:.0f} MiB and a manifest, more than {max_files} files; publish less "
                     "(fewer or smaller images) or raise the limits")
    written = []
    for k, part in enumerate(parts):
        path = out / f"{folder.name}.tgz.{k:02d}"
        with store.atomic_path(path) as tmp:
            tmp.write_bytes(part)
        written.append(path)
    manifest = out / f"{folder.name}.manifest.json"
    store.atomic_write_text(manifest, json.dumps({"folder": folder.name, "parts": [p.name for p in written],
                                                  "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
                                                 indent=1))
    return [*written, manifest]


def unpack(manifest: str | Path, dest: str | Path) -> Path:
    """Reassemble the parts a manifest names (beside it), check the sha256, extract under ``dest``;
    the extracted folder. ValueError naming the manifest if a part is missing or the hash differs."""
    manifest, dest = Path(manifest), Path(dest)
    info = json.loads(manifest.read_text())
    missing = [p for p in info["parts"] if not (manifest.parent / p).is_file()]
    if missing:
        raise ValueError(f"{manifest}: part {missing[0]} is missing beside it; copy every part listed")
    data = b"".join((manifest.parent / p).read_bytes() for p in info["parts"])
    if hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise ValueError(f"{manifest}: the parts do not match its sha256 (a part is truncated or from another "
                         "pack); copy them again")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest / info["folder"]
