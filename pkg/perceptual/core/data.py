"""Datasets: a registry (``data/datasets.tsv``), verified resumable downloads, a data root for
local mirrors, and embedded demo data.

- Every dataset lives in a folder under the data root (:func:`perceptual.core.paths.data_root`;
  ``PERCEPTUAL_DATA_ROOT`` points it at a local mirror such as ``../shared/data``).
- ``files`` datasets list one URL and hash per file in ``data/files/<name>.tsv``;
  ``archive`` datasets are one zip/tar with a hash, extracted in place; ``mirror`` datasets
  exist only as local mirrors.
- Downloads go through pooch (hash check, atomic move into place) with a resumable
  requests-based downloader: an interrupted transfer leaves ``<cache>/partial/*.part`` and the
  next fetch continues it with an HTTP Range request. No corrupt file ever lands in a folder.
  A server that cannot be reached (no network, DNS failure, connection refused) is reported as
  :class:`NoConnection`, distinct from a transfer that started and was cut ("interrupted … run
  the same command again to resume").
- A local mirror (``PERCEPTUAL_DATA_ROOT``) is read-only: :func:`fetch` refuses to write into it.
- A missing dataset raises :class:`DataMissing` naming it and the command that gets it.
  Nothing falls back silently to other data.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perceptual.core import paths, store

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


class DataError(RuntimeError):
    """A dataset could not be fetched or verified; the message names it and the cause."""


class DataMissing(DataError):
    """A dataset a computation needs is not under the data root."""


class NoConnection(DataError):
    """The server could not be reached at all (nothing was transferred)."""


class DataRootMissing(DataMissing):
    """``PERCEPTUAL_DATA_ROOT`` names a folder that does not exist (a typo, an unmounted disk)."""


def check_data_root() -> Path:
    """The data root; :class:`DataRootMissing` when ``PERCEPTUAL_DATA_ROOT`` names no folder (a
    mistyped mirror would otherwise make every dataset look merely "missing"). The download cache
    (the default) may not exist yet: nothing was downloaded."""
    root = paths.data_root()
    if paths.data_root_is_mirror() and not root.is_dir():
        given = os.environ.get("PERCEPTUAL_DATA_ROOT", "").strip()
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataRootMissing(f"PERCEPTUAL_DATA_ROOT={given}: the data root {what}"
                              f"{f' ({root})' if str(root) != given else ''}; correct the path, or unset "
                              f"PERCEPTUAL_DATA_ROOT to use the download cache ({paths.cache_dir() / 'data'})")
    return root


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # files | archive | mirror
    folder: str  # relative to the data root
    count: int
    size_mb: float
    url: str  # archive URL, or the per-file table for `files`
    hash: str
    licence: str
    description: str

    def path(self, root: Path | None = None) -> Path:
        return (root or paths.data_root()) / self.folder

    def files(self) -> list[tuple[str, str, str]]:
        """(relative path, url, hash) per file of a ``files`` dataset."""
        with open(paths.tables_dir() / self.url, newline="") as fh:
            return [(r["path"], r["url"], r["hash"]) for r in csv.DictReader(fh, delimiter="\t")]


def registry(table: Path | None = None) -> dict[str, Dataset]:
    """The datasets in ``data/datasets.tsv``."""
    table = table or paths.tables_dir() / "datasets.tsv"
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {r["name"]: Dataset(r["name"], r["kind"], r["folder"], int(r["count"]), float(r["size_mb"] or 0),
                               r["url"], r["hash"], r["licence"], r["description"]) for r in rows}


def get(name: str) -> Dataset:
    reg = registry()
    if name not in reg:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(reg)}")
    return reg[name]


def list_images(folder: Path) -> list[Path]:
    """Image files below ``folder``, sorted by path."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def require(name: str, root: Path | None = None) -> Path:
    """The folder of dataset ``name``; :class:`DataMissing` with the fix if it is absent."""
    ds = get(name)
    if root is None:
        check_data_root()
    folder = ds.path(root)
    if not folder.is_dir() or not list_images(folder):
        how = ("it exists only as a local mirror: set PERCEPTUAL_DATA_ROOT (make DATA_ROOT=…) to a folder "
               "that has it" if ds.kind == "mirror" else
               f"run `perceptual data fetch {name}` (or `make data DATASETS={name}`), or set "
               f"PERCEPTUAL_DATA_ROOT to a local mirror that has it")
        raise DataMissing(f"dataset {name!r} ({ds.description}) is missing: no images in {folder}.\n  {how}")
    return folder


# ---------------------------------------------------------------------------------------------
# hashes


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pixel_hash(path: Path) -> str:
    """sha256 of the decoded pixel array (shape included): format-independent identity."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im)
    return hashlib.sha256(str(arr.shape).encode() + arr.tobytes()).hexdigest()


def actual_hash(path: Path, expected: str) -> str:
    """``path``'s hash in the form of ``expected`` (``algo:hex``), or ``unreadable (…)``."""
    algo, _, _ = expected.partition(":")
    try:
        return f"{algo}:{pixel_hash(path) if algo == 'pixels' else file_hash(path, algo)}"
    except Exception as err:  # noqa: BLE001 (an undecodable image under a pixel hash, an unreadable file)
        return f"unreadable ({type(err).__name__})"


def verify(path: Path, expected: str) -> bool:
    """Check ``path`` against ``algo:hex`` (sha256/md5 of the bytes, or ``pixels:`` sha256)."""
    if not expected:
        return path.is_file()
    algo, _, digest = expected.partition(":")
    if algo == "pixels":
        return pixel_hash(path) == digest
    return file_hash(path, algo) == digest


# ---------------------------------------------------------------------------------------------
# downloading


class ResumableDownloader:
    """A pooch downloader that keeps partial transfers and resumes them with HTTP Range."""

    def __init__(self, partial_dir: Path, progressbar: bool = True, timeout: float = 60.0):
        self.partial_dir, self.progressbar, self.timeout = partial_dir, progressbar, timeout

    def part_file(self, url: str) -> Path:
        return self.partial_dir / (hashlib.sha1(url.encode()).hexdigest()[:16] + ".part")

    def __call__(self, url: str, output_file: str, pooch_obj=None, check_only: bool = False) -> bool | None:
        import requests
        from tqdm.auto import tqdm

        if check_only:
            return requests.head(url, timeout=self.timeout, allow_redirects=True).ok
        part = self.part_file(url)
        part.parent.mkdir(parents=True, exist_ok=True)
        start = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        try:
            resp = requests.get(url, headers=headers, stream=True, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as err:  # before any byte: no connection
            host = requests.utils.urlparse(url).netloc
            raise NoConnection(f"cannot reach {host} to download {url} ({_root_cause(err)}): check the network "
                               "connection (or proxy), or set PERCEPTUAL_DATA_ROOT to a local mirror") from err
        with resp:
            if resp.status_code == 416:  # the partial file is already complete
                pass
            else:
                resp.raise_for_status()
                if start and resp.status_code != 206:  # server ignored Range: start over
                    start = 0
                total = int(resp.headers.get("Content-Length", 0)) + start or None
                with open(part, "ab" if start else "wb") as fh, tqdm(
                        total=total, initial=start, unit="B", unit_scale=True, desc=Path(url).name,
                        disable=not self.progressbar, leave=False) as bar:
                    for chunk in resp.iter_content(chunk_size=1 << 14):
                        fh.write(chunk)
                        bar.update(len(chunk))
        shutil.move(str(part), output_file)
        return None


def _root_cause(err: BaseException) -> str:
    """The innermost reason of a requests error, short (e.g. "Connection refused")."""
    chain = [err]
    for _ in range(10):  # requests → urllib3 MaxRetryError → NewConnectionError → OSError
        nxt = err.args[0] if err.args and isinstance(err.args[0], BaseException) else \
            getattr(err, "reason", None) or err.__context__
        if not isinstance(nxt, BaseException):
            break
        err = nxt
        chain.append(err)
    text = " ".join(str(e) for e in chain)
    for known in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                  "Network is unreachable", "timed out", "No route to host"):
        if known in text:
            return known
    return type(err).__name__


def _retrieve(url: str, known_hash: str, target: Path, progressbar: bool = True) -> Path:
    """Download ``url`` to ``target`` (verified, atomic, resumable) with pooch."""
    import pooch
    import requests

    pooch_hash = None if not known_hash or known_hash.startswith("pixels:") else known_hash
    downloader = ResumableDownloader(paths.cache_dir() / "partial", progressbar=progressbar)
    pooch.get_logger().setLevel("WARNING")  # our own progress bar says what is downloading
    try:
        out = pooch.retrieve(url, known_hash=pooch_hash, fname=target.name, path=target.parent,
                             downloader=downloader, progressbar=False)
    except requests.HTTPError as err:
        raise DataError(f"download of {url} failed: HTTP {err.response.status_code}") from err
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
        raise DataError(f"download of {url} was interrupted ({type(err).__name__}); run the same command "
                        f"again to resume from {downloader.part_file(url)}") from err
    except ValueError as err:  # pooch: hash mismatch (the bad file is already removed)
        downloader.part_file(url).unlink(missing_ok=True)
        raise DataError(f"checksum mismatch for {url}: {err}") from err
    return Path(out)


def _fetch_file(rel: str, url: str, expected: str, folder: Path, progressbar: bool) -> None:
    target = folder / rel
    if target.is_file() and verify(target, expected):
        return
    if expected.startswith("pixels:"):  # stored in another format than served: convert, then check
        raw = _retrieve(url, "", paths.cache_dir() / "raw" / folder.name / Path(url).name, progressbar)
        from PIL import Image

        with Image.open(raw) as im, store.atomic_path(target) as tmp:
            im.save(tmp, format=target.suffix.lstrip(".").upper().replace("JPG", "JPEG"))
            if not verify(tmp, expected):
                raise DataError(f"{rel}: decoded pixels of {url} do not match the registry")
    else:
        _retrieve(url, expected, target, progressbar)


def fetch(name: str, root: Path | None = None, progressbar: bool = True) -> Path:
    """Download, verify and (for archives) extract dataset ``name`` into ``root`` (default: the
    data root). A local mirror (``PERCEPTUAL_DATA_ROOT``) is never written to: refused."""
    import pooch

    ds = get(name)
    if root is None:
        if paths.data_root_is_mirror():
            raise DataError(f"PERCEPTUAL_DATA_ROOT={paths.data_root()} is a local mirror, which is never written "
                            f"to; to download {name} into the download cache ({paths.cache_dir() / 'data'}), "
                            "unset PERCEPTUAL_DATA_ROOT (no DATA_ROOT for make), or copy it into the mirror yourself")
        root = paths.data_root()
    folder = ds.path(root)
    if ds.kind == "mirror":
        raise DataError(f"dataset {name!r} has no public download: it exists only as a local mirror "
                        f"(set PERCEPTUAL_DATA_ROOT to a folder that has {ds.folder}/)")
    if ds.kind == "files":
        from tqdm.auto import tqdm

        for rel, url, expected in tqdm(ds.files(), desc=name, unit="file", disable=not progressbar):
            _fetch_file(rel, url, expected, folder, progressbar)
        return folder
    archive = _retrieve(ds.url, ds.hash, paths.cache_dir() / "archives" / Path(ds.url).name, progressbar)
    unpack = pooch.Unzip if archive.suffix == ".zip" else pooch.Untar
    staging = folder.parent / f".{folder.name}.extracting"
    shutil.rmtree(staging, ignore_errors=True)
    unpack(extract_dir=str(staging))(str(archive), "download", None)
    inner = staging / folder.name if (staging / folder.name).is_dir() else staging
    if folder.exists():  # merge (a partial sample may be there already)
        for p in inner.rglob("*"):
            if p.is_file():
                dest = folder / p.relative_to(inner)
                dest.parent.mkdir(parents=True, exist_ok=True)
                p.replace(dest)
    else:
        inner.replace(folder)
    shutil.rmtree(staging, ignore_errors=True)
    return folder


HASH_SHOWN = 12  # hex digits of a hash shown in messages


def _short_hash(value: str) -> str:
    algo, sep, digest = value.partition(":")
    return f"{algo}:{digest[:HASH_SHOWN]}…" if sep and len(digest) > HASH_SHOWN else value


def status(root: Path | None = None, check_hashes: bool = False) -> list[dict]:
    """One row per dataset: present / incomplete / corrupt / missing, with counts; with
    ``check_hashes``, ``corrupt_files`` lists each file whose hash differs (its path relative to
    the data root, the expected and the actual hash, shortened). :class:`DataRootMissing` when
    ``PERCEPTUAL_DATA_ROOT`` names no folder."""
    if root is None:
        check_data_root()
    rows = []
    for ds in registry().values():
        folder = ds.path(root)
        found = len(list_images(folder)) if folder.is_dir() else 0
        state, corrupt = ("missing" if found == 0 else "present" if found >= ds.count else "incomplete"), []
        if ds.kind == "files" and folder.is_dir():  # counted by its file list (not only images: weights too)
            entries = ds.files()
            have = [(rel, folder / rel, h) for rel, _, h in entries if (folder / rel).is_file()]
            found = len(have)
            if check_hashes:
                for rel, path, expected in have:
                    actual = actual_hash(path, expected) if expected else ""
                    if expected and actual != expected:
                        corrupt.append({"path": (Path(ds.folder) / rel).as_posix(),
                                        "expected": _short_hash(expected), "actual": _short_hash(actual)})
            state = ("corrupt" if corrupt else "present" if len(have) == len(entries) else
                     "incomplete" if have else "missing")
        rows.append({"dataset": ds.name, "status": state, "files": found, "expected": ds.count,
                     "corrupt": len(corrupt), "corrupt_files": corrupt, "folder": str(folder)})
    return rows
