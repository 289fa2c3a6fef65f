"""Applying a trained style network: the fast inference path and ``perceptual stylize``.

Fast path (:mod:`perceptual.runtime.inference`): batch norm folded into the preceding (transposed)
convolution, no autograd, channels-last memory, bf16/fp16 where the device runs it fast
(``precision``), and overlapping tiles for images too large for memory (``tile``).

Options: ``preserve_color`` keeps the content image's colours — the output's luminance Y is
combined with the input's chroma (BT.601 YCbCr); ``median`` applies the authors' 3×3 median
filter (their test script's default); ``strength`` blends with the input. Output size = input
size; images smaller than the design takes are replicate-padded and cropped back.

Nothing is lost (:func:`plan_outputs`, checked before any work): two inputs that would get the
same output name (``a/x.jpg``, ``b/x.jpg``, ``x.png``) are an error naming both; an output that
would replace an input is refused even with ``overwrite`` (writing into the input folder works
when no name collides). Outputs are written atomically (temporary file, then rename) with the
usual file permissions. Only style networks are applied: a super-resolution model is refused
with a clear error.

A batch always finishes (:func:`stylize_files`): an input that cannot be read, is over the pixel
budget, or whose output cannot be written (disk full, a name too long for the file system, a
file that appeared meanwhile) is reported as one line naming it and the reason, and the rest go
on; ``Report.ok`` is False then. Each output is reported as it is written (``on_event``).

Rerunning resumes: an output that exists and decodes completely is kept and skipped (say so,
count at the end); ``overwrite`` recomputes it. An output that exists but does not decode (cut
short by something other than this command, whose writes are atomic) is recomputed. Temporaries
of ours that a killed run left beside the outputs (``.<name>.XXXXXXXX.tmp``) are removed first.

Pixel budget: every input is read under :data:`perceptual.core.images.MAX_PIXELS` (2**28 px,
16384²), tiled or not. Tiles bound the network's activations only; the full-size input, output
and blend buffers stay in memory (≈ 50 bytes per pixel), so the budget is what the tiled path can
process, and an image over it is refused by name with the budget in the message — before it is
decoded (Pillow's own, lower decompression-bomb limit is replaced by it while we read; its
warning never reaches the user). Under the budget, an image too large for memory in one piece
goes through tiles automatically (``tile``: force a tile size; it must exceed the tiles' overlap,
:func:`check_tile`).
"""
from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from concurrent.futures import Future
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perceptual.core import colour, images, store
from perceptual.core.data import list_images
from perceptual.runtime.inference import (auto_precision, default_overlap, geometry, inference_model, process,
                                          receptive_radius)
from perceptual.runtime.precision import resolve
from perceptual.method.train import load_model, pick_device

log = logging.getLogger("perceptual.tools.stylize")


# ---------------------------------------------------------------------------------------------
# post-processing


def preserve_color(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylised`` with the chroma of ``content`` (same shape)."""
    s, c = colour.rgb_to_jpeg_ycbcr(stylised), colour.rgb_to_jpeg_ycbcr(content)
    return colour.jpeg_ycbcr_to_rgb(torch.cat([s[..., :1, :, :], c[..., 1:, :, :]], dim=-3)).clamp(0, 255)


def median3(x: torch.Tensor) -> torch.Tensor:
    """3×3 median filter per channel, reflect-padded. (…, C, H, W)."""
    shape = x.shape
    x4 = x.reshape(-1, 1, *shape[-2:])
    patches = F.unfold(F.pad(x4, (1, 1, 1, 1), mode="replicate"), 3)  # (N, 9, H*W)
    return patches.median(dim=1).values.reshape(shape)


# ---------------------------------------------------------------------------------------------
# one image / many files


MIN_SIDE = 44  # the 40 px reflection pad needs ≥ 41; 44 keeps the multiple-of-4 path
SAVE_ARGS = {".png": {"compress_level": 1}}  # zlib level 1, OpenCV's default: as lossless as Pillow's 6,
# and on a stylized 512² photo ≈ 2.3× faster to write (46 → 20 ms at 510×338) for ≈ 7 % more bytes;
# on 2 busy cores every millisecond of encoding is taken from the network


def stylize_image(model: nn.Module, image: torch.Tensor, keep_colors: bool = False, median: bool = False,
                  max_side: int | None = None, strength: float = 1.0, precision: str = "fp32",
                  tile: int | None = None) -> torch.Tensor:
    """(3, H, W) in [0, 255] → stylised (3, H, W). ``max_side`` shrinks large inputs first
    (the output is resized back to the input size); ``strength`` < 1 blends the result with the
    input (0: the input, 1: the network's output); ``precision`` (resolved) and ``tile``: see
    :func:`perceptual.runtime.inference.process`."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    h, w = image.shape[-2:]
    x = image
    if max_side and max(h, w) > max_side:
        x = images.resize_longer(x, max_side)
    ph, pw = max(0, MIN_SIDE - x.shape[-2]), max(0, MIN_SIDE - x.shape[-1])
    if ph or pw:
        x = F.pad(x[None], (0, pw, 0, ph), mode="replicate")[0]
    y = process(model, x[None], precision, tile)[0][..., : x.shape[-2] - ph, : x.shape[-1] - pw]
    if y.shape[-2:] != (h, w):
        y = images.resize(y, (h, w))
    if median:
        y = median3(y)
    if keep_colors:
        y = preserve_color(y, image)
    if strength < 1.0:
        y = strength * y + (1.0 - strength) * image
    return y.clamp(0, 255)


class OutputError(ValueError):
    """The outputs cannot be written without losing something; nothing was written."""


class BadOption(ValueError):
    """An option that does not fit this model (``--tile``); nothing was read or written."""


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, one-line reason naming it)
    skipped: list[Path] = field(default_factory=list)  # complete outputs kept (a resumed run)
    removed: list[Path] = field(default_factory=list)  # stale temporaries of an interrupted run
    precision: str = ""  # the precision the network ran in
    psnr: float | None = None  # ``auto``: that precision's PSNR from the float path (None: a float one)

    @property
    def ok(self) -> bool:
        return not self.failed


def expand_inputs(inputs: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, relative output stem) for files and folders (folders recursively). A missing
    input or a folder without images is a :class:`FileNotFoundError` naming it."""
    out = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = list_images(item)
            if not found:
                raise FileNotFoundError(f"{item}: no images in this folder (looked for .jpg, .png, .tif, …)")
            out += [(f, f.relative_to(item).with_suffix("")) for f in found]
        elif item.exists():
            out.append((item, Path(item.stem)))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return out


def plan_outputs(inputs: Sequence[str | Path], output_dir: str | Path, suffix: str = ".png") -> list[tuple[Path, Path]]:
    """(input, output path) per input image, checked before any work: :class:`OutputError` if
    ``output_dir`` is a file or not writable, two inputs share an output name, or an output would
    replace an input. Existing outputs are :func:`stylize_files`' business (kept or recomputed)."""
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"-o {out_dir}: is a file; name a folder for the outputs")
    plan = [(src, out_dir / stem.with_suffix(suffix)) for src, stem in expand_inputs(inputs)]
    sources = {src.resolve(): src for src, _ in plan}
    seen: dict[Path, Path] = {}
    for src, dst in plan:
        key = dst.resolve()
        if key in sources:
            raise OutputError(f"{dst} would replace the input {sources[key]}: write into another folder (-o)")
        if key in seen:
            raise OutputError(f"{seen[key]} and {src} would both be written to {dst}: stylise them into "
                              "separate folders or rename one")
        seen[key] = src
    _check_writable(out_dir)
    return plan


def _check_writable(folder: Path) -> None:
    """:class:`OutputError` unless ``folder`` exists (or can be made) and accepts new files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"-o {folder}: cannot create the folder ({err.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"-o {folder}: not writable (permission denied)")


def remove_stale_temporaries(plan: Sequence[tuple[Path, Path]]) -> list[Path]:
    """Delete the temporaries that an interrupted run (kill -9, power cut) left beside the planned
    outputs: ``.<output name>.XXXXXXXX.tmp`` exactly as :func:`perceptual.core.store.atomic_path`
    names them, for the outputs of this plan only (nothing else in the folders is touched)."""
    prefixes: dict[Path, set[str]] = {}
    for _, dst in plan:
        prefixes.setdefault(dst.parent, set()).add(f".{dst.name[:store.TMP_NAME_ROOM]}.")
    ours = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}" + re.escape(store.TMP_SUFFIX))
    removed = []
    for folder, names in prefixes.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not made yet (a subfolder of -o), or unreadable: nothing of ours there
            continue
        for entry in entries:
            found = ours.fullmatch(entry.name)
            if found and f".{found['name']}." in names and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def load_style_model(checkpoint: str | Path, device: torch.device) -> tuple[nn.Module, dict]:
    """A style network from a checkpoint; a super-resolution model is a clear :class:`ValueError`."""
    model, meta = load_model(checkpoint, device)
    if meta.get("kind") != "style":
        what = f"a ×{meta.get('factor')} super-resolution model ({meta.get('method', meta.get('kind'))})" \
            if meta.get("kind") in ("sr", "srcnn") else f"a {meta.get('kind')!r} model"
        raise ValueError(f"{checkpoint}: {what}, not a style network; stylize applies style networks "
                         "(super-resolution models are evaluated by `perceptual run superres`)")
    return model, meta


def check_tile(model: nn.Module, tile: int) -> None:
    """:class:`BadOption` unless ``tile`` (what the user gave) can tile ``model``: tiles must be
    larger than their overlap (:func:`perceptual.runtime.inference.default_overlap`), and an
    instance-norm network is not tile-invariant at all."""
    if geometry(model).instance_norm:
        raise BadOption(f"--tile {tile}: this network uses instance norm, which is not tile-invariant (every tile "
                        "would be normalised with its own statistics): drop --tile, or use --max-side to shrink the input")
    overlap, align = default_overlap(model), geometry(model).align
    if tile <= overlap:
        raise BadOption(f"--tile {tile}: too small for this network; tiles overlap by {overlap} px (twice its "
                        f"receptive-field radius of {receptive_radius(model)} px, plus a 16 px blend), so use "
                        f"--tile {overlap + 1} or more (rounded up to a multiple of {align}; e.g. --tile 512)")


Event = Callable[[str, Path, str], None]  # (kind, path, one line); kinds: written, skipped, replaced, failed, removed


def _why(err: BaseException, src: Path, dst: Path) -> str:
    """One line naming the input and why its output was not made."""
    if isinstance(err, images.ImageError):
        text = str(err)  # names the input already
    elif isinstance(err, OSError) and err.errno == errno.ENAMETOOLONG:
        size = len(os.fsencode(dst.name))
        try:
            limit = os.pathconf(dst.parent, "PC_NAME_MAX")
        except (OSError, ValueError):
            limit = 255
        what = (f"the output name {dst.name[:24]}…{dst.suffix} is {size} bytes, over the file system's {limit}"
                if size > limit else f"the output path {str(dst)[:24]}… is too long ({len(os.fsencode(str(dst)))} bytes)")
        text = f"{src}: {what}; rename the input (or use a shorter -o folder)"
    elif isinstance(err, store.DiskFull):
        text = f"{src}: {err}"
    elif isinstance(err, OSError):
        text = f"{src}: {dst} not written ({err.strerror or err})" if not isinstance(err, FileExistsError) \
            else f"{src}: {err}"
    elif isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)):
        text = f"{src}: out of memory stylising it; try --max-side or --tile 512"
    else:
        text = f"{src}: {type(err).__name__}: {err}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def stylize_files(checkpoint: str | Path, inputs: Sequence[str | Path], output_dir: str | Path,
                  keep_colors: bool = False, median: bool = False, device: str | None = None,
                  suffix: str = ".png", max_side: int | None = None, strength: float = 1.0,
                  progress: bool = True, overwrite: bool = False, precision: str = "auto",
                  tile: int | None = None, on_event: Event | None = None) -> Report:
    """Stylise files and/or folders into ``output_dir``. The model, ``tile`` and every output
    name are checked before any work (:func:`plan_outputs`); then stale temporaries are removed
    and each input is stylised, skipped (a complete output exists and not ``overwrite``) or
    reported as failed with the reason, and the rest finish. ``on_event(kind, path, line)`` hears
    of each as it happens. ``precision``: auto | fp32 | bf16 | fp16 | int8
    (:func:`perceptual.runtime.precision.resolve`); ``tile``: force tiles of this size."""
    from tqdm.auto import tqdm

    dev = pick_device(device)
    resolve(precision, dev, inference=True)  # a bad name is refused before anything is read or made
    model, meta = load_style_model(checkpoint, dev)
    report = Report()
    if precision == "auto":  # int8 where it is fast and ≥ 45 dB from the float path (checked once per network)
        prec, report.psnr = auto_precision(model, dev)
    else:
        prec = resolve(precision, dev, inference=True)
    report.precision = prec
    fast = inference_model(model, dev, prec)
    if tile is not None:
        check_tile(fast, tile)
    plan = plan_outputs(inputs, output_dir, suffix)

    def emit(kind: str, path: Path, line: str) -> None:
        if on_event is not None:
            on_event(kind, path, line)

    log.info("precision %s%s", prec, f" ({report.psnr:.1f} dB from the float path on held-out photos)"
             if report.psnr is not None else "")  # --verbose shows it; the report records it
    report.removed = remove_stale_temporaries(plan)
    for tmp in report.removed:
        emit("removed", tmp, f"removed {tmp}, a temporary file left by an interrupted run")
    todo = []  # (input, output, replace an unreadable output?)
    for path, dst in plan:
        if not overwrite and os.path.lexists(dst):
            if images.is_readable(dst):
                report.skipped.append(dst)
                emit("skipped", dst, f"skipped {dst}: exists and is complete (--overwrite recomputes it)")
                continue
            emit("replaced", dst, f"{dst} exists but is not a readable image (incomplete?): recomputing it")
            todo.append((path, dst, True))  # cut short (not by us: our writes are atomic); recompute it
        else:
            todo.append((path, dst, overwrite))

    def failed(path: Path, dst: Path, err: BaseException) -> None:
        why = _why(err, path, dst)
        log.info("failed: %s", why)
        report.failed.append((path, why))
        emit("failed", path, why)

    def network(image: torch.Tensor) -> torch.Tensor:
        return stylize_image(fast, image, keep_colors, median, max_side, strength, prec, tile)

    def write(item: tuple[Path, Path, bool], out: torch.Tensor) -> Path:
        return images.write_image(out, item[1], overwrite=item[2], **SAVE_ARGS.get(item[1].suffix.lower(), {}))

    bar = tqdm(total=len(todo), desc=f"stylize ({meta.get('style', '?')})", disable=not progress)
    for (path, dst, _), result in pipeline(todo, lambda item: images.read_image(item[0]), network, write,
                                           errors=STAGE_ERRORS):
        if isinstance(result, BaseException):
            failed(path, dst, result)
        else:
            report.written.append(result)
            emit("written", dst, str(dst))
        bar.update(1)
    bar.close()
    return report


STAGE_ERRORS = (images.ImageError, OSError, MemoryError, torch.cuda.OutOfMemoryError)  # one input's failure


def pipeline(items: Sequence, decode: Callable, compute: Callable, encode: Callable, errors: tuple = STAGE_ERRORS,
             depth: int = 2) -> Iterator[tuple[object, object]]:
    """(item, ``encode``'s result or the exception that stopped it) for each item, in order, with
    decoding, computing and encoding overlapped: the next ``depth`` items are decoded in one thread and
    the previous results encoded in another while ``compute`` runs here (PyTorch, Pillow and zlib
    release the GIL). An exception in ``errors`` fails its item only; any other propagates after
    the started writes finish (each write is atomic)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    with ThreadPoolExecutor(1, thread_name_prefix="decode") as readers, \
            ThreadPoolExecutor(1, thread_name_prefix="encode") as writers:
        reads = deque(readers.submit(decode, item) for item in items[:depth])
        writes: deque = deque()  # (item, future or exception)

        def finished(block: bool) -> Iterator[tuple[object, object]]:
            while writes and (block or not isinstance(writes[0][1], Future) or writes[0][1].done()):
                item, pending = writes.popleft()
                if isinstance(pending, Future):
                    try:
                        pending = pending.result()
                    except errors as err:
                        pending = err
                yield item, pending

        try:
            for k, item in enumerate(items):
                future = reads.popleft()
                if k + depth < len(items):
                    reads.append(readers.submit(decode, items[k + depth]))
                try:
                    out = compute(future.result())
                except errors as err:
                    writes.append((item, err))
                else:
                    writes.append((item, writers.submit(encode, item, out)))
                yield from finished(block=False)
        except BaseException:  # Ctrl-C, a bug: what was written is still reported, then it goes on up
            for future in reads:
                future.cancel()
            yield from finished(block=True)
            raise
        yield from finished(block=True)
