"""Image files ↔ tensors. One convention: RGB float tensors in [0, 255], (3, H, W) or (B, 3, H, W).

Reading handles what people actually have: EXIF orientation is applied; greyscale, palette,
RGBA (composited on white), 16-bit and CMYK inputs become 8-bit-range RGB. A file that cannot
be decoded raises :class:`ImageError` naming it, and so does one larger than :data:`MAX_PIXELS`,
refused from its header before anything is decoded (no raw ``DecompressionBombWarning``).
"""
from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from perceptual.core import store


class ImageError(ValueError):
    """An image file is unreadable or has content we cannot convert; names the file."""


# The pixel budget of every image read here: 2**28 px (268 Mpx, 16384 × 16384). Pillow's own
# limit (Image.MAX_IMAGE_PIXELS ≈ 89.5 Mpx: a DecompressionBombWarning above it, an error above
# twice it) guards against decompression bombs but is below what the tiled path of
# ``perceptual stylize`` processes: tiles bound the network's activations, not the full-size
# buffers (the decoded image, the float input and output, the blend weights: ≈ 50 bytes per
# pixel), so 2**28 px is ≈ 13 GiB, what a workstation that stylises such images holds. Beyond it,
# tiling would not help either. A header that claims more (a 30000 × 30000 one-colour PNG is a
# few MB on disk; corrupt headers claim billions) is refused before decoding, naming the file.
MAX_PIXELS = 2 ** 28

_PILLOW_LIMIT = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-wide: one reader sets it at a time


@contextmanager
def _pillow_limit(max_pixels: int | None):
    """Pillow's decompression-bomb limit set to ``max_pixels`` (restored after), its warning an
    error: nothing over the budget is decoded or warned about behind our back."""
    from PIL import Image

    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


def _open(path: Path, max_pixels: int | None):
    """``Image.open`` (the header only) with :class:`ImageError` naming the file when its size is
    over ``max_pixels``. Call inside :func:`_pillow_limit`."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # only the header is read: our check below names the budget
    try:
        im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = max_pixels
    w, h = im.size
    if max_pixels is not None and w * h > max_pixels:
        im.close()
        side = int(max_pixels ** 0.5)
        raise ImageError(f"{path}: {w}×{h} = {w * h:,} pixels, over the budget of {max_pixels:,} ({side}×{side}; "
                         "perceptual.core.images.MAX_PIXELS); not decoded: shrink it first")
    return im


def _to_rgb_array(im) -> np.ndarray:
    """A PIL image of any mode → (H, W, 3) float32 array in [0, 255]."""
    from PIL import Image

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit (or 32-bit int) greyscale
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / peak * 255.0, 0, 255)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.float32)


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> torch.Tensor:
    """Read any image file as an RGB float tensor (3, H, W) in [0, 255]. An image of more than
    ``max_pixels`` (default :data:`MAX_PIXELS`) is refused from its header, before decoding."""
    from PIL import ImageOps

    path = Path(path)
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file; name an image file (e.g. {path}/picture.jpg)")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with _pillow_limit(max_pixels), _open(path, max_pixels) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = _to_rgb_array(im)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{path}: too large to decode in the memory available") from None
    except Exception as err:  # noqa: BLE001 (Pillow raises many types for a bad file: all mean this file)
        raise ImageError(f"{path}: not a readable image ({_type_name(err)}: {_first_line(err)})") from err
    if arr.size == 0:
        raise ImageError(f"{path}: image has no pixels")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _type_name(err: BaseException) -> str:
    """``OSError``, ``struct.error`` (a bare ``error`` says nothing)."""
    name = type(err).__name__
    return name if name[:1].isupper() or type(err).__module__ == "builtins" else f"{type(err).__module__}.{name}"


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def is_readable(path: str | os.PathLike, max_pixels: int | None = None) -> bool:
    """True when ``path`` decodes completely as an image (a truncated or corrupt file: False)."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with _pillow_limit(max_pixels), _open(Path(path), max_pixels) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 (unreadable for whatever reason)
        return False


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float [0, 255] → (H, W, 3) uint8, rounded and clipped."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    return image.detach().float().cpu().clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def from_array(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (H, W) uint8/float array in [0, 255] → (3, H, W) float tensor."""
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) image array, got shape {arr.shape}")
    return torch.from_numpy(arr[..., :3].copy()).permute(2, 0, 1).contiguous()


def write_image(image: torch.Tensor, path: str | os.PathLike, overwrite: bool = True, **save_args) -> Path:
    """Save (3, H, W) or (1, 3, H, W) in [0, 255] atomically; format from the suffix.
    ``overwrite=False``: :class:`FileExistsError` rather than replacing an existing file."""
    from PIL import Image

    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
           ".tif": "TIFF", ".tiff": "TIFF"}.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unsupported output format {path.suffix!r} (use .png or .jpg)")
    with store.atomic_path(path, overwrite=overwrite) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format=fmt, **save_args)
    return path


def resize(image: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize (3, H, W) or (B, 3, H, W) to (h, w), antialiased when shrinking."""
    batch = image if image.dim() == 4 else image[None]
    out = F.interpolate(batch, size=size, mode=mode, antialias=mode in ("bilinear", "bicubic"),
                        align_corners=False if mode in ("bilinear", "bicubic") else None)
    return out if image.dim() == 4 else out[0]


def resize_longer(image: torch.Tensor, longer: int) -> torch.Tensor:
    """Resize so the longer side is ``longer`` px (aspect ratio kept)."""
    h, w = image.shape[-2:]
    s = longer / max(h, w)
    return resize(image, (max(1, round(h * s)), max(1, round(w * s))))


def resize_shorter(image: torch.Tensor, shorter: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    s = shorter / min(h, w)
    return resize(image, (max(1, round(h * s)), max(1, round(w * s))))


def center_crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = image.shape[-2:]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return image[..., top:top + size[0], left:left + size[1]]


def square(image: torch.Tensor, size: int, rule: str = "warp") -> torch.Tensor:
    """Make a ``size``×``size`` training image.

    - ``warp``: resize to size×size, ignoring aspect ratio (paper §4.1: "resize … to 256×256");
    - ``topleft16-warp``: the authors' code: crop the top-left corner to multiples of 16, then warp;
    - ``center``: resize the shorter side to ``size``, centre-crop (keeps aspect ratio).
    """
    if rule == "warp":
        return resize(image, (size, size))
    if rule == "topleft16-warp":
        h, w = image.shape[-2:]
        return resize(image[..., : max(16, h - h % 16), : max(16, w - w % 16)], (size, size))
    if rule == "center":
        return center_crop(resize_shorter(image, size), (size, size))
    raise ValueError(f"unknown resize rule {rule!r} (warp, topleft16-warp, center)")
