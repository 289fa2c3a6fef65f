"""Embedded demo data: scikit-image's bundled photographs and a deterministically drawn style.

No download and no ``../shared``: :func:`materialize` writes the images once into a folder laid
out like a data root, so every consumer reads folders whatever the profile.

| role     | folder            | images                                                        |
|----------|-------------------|---------------------------------------------------------------|
| train    | ``train/demo``     | rocket, motorcycle_left, hubble_deep_field, retina, ihc, coffee |
| content  | ``content/demo``   | astronaut, chelsea                                            |
| sr       | ``sr/Demo``        | astronaut, chelsea (HR benchmark)                             |
| style    | ``styles/demo``    | ``swirl.png``: colourised ``gravel`` texture × sine swirl     |

Training and evaluation images do not overlap.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from perceptual.core import paths
from perceptual.core.images import from_array, write_image

TRAIN = ("rocket", "motorcycle_left", "hubble_deep_field", "retina", "ihc", "coffee")
CONTENT = ("astronaut", "chelsea")
SR = ("astronaut", "chelsea")
STYLE_FILE = "styles/demo/swirl.png"


def sample(name: str) -> np.ndarray:
    """A scikit-image sample photograph as (H, W, 3) uint8 (shipped in the wheel, no download)."""
    import skimage.data
    from PIL import Image

    folder = Path(skimage.data.__file__).parent
    files = [f for f in folder.iterdir() if f.stem == name and f.suffix in (".png", ".jpg")]
    if not files:
        raise FileNotFoundError(f"scikit-image ships no sample image {name!r} in {folder}")
    with Image.open(files[0]) as im:
        arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def style_image(size: int = 384) -> np.ndarray:
    """A deterministic 'painting': the gravel texture, colourised, modulated by a swirl."""
    import matplotlib
    from skimage.transform import resize

    tex = resize(sample("gravel")[..., 0] / 255.0, (size, size), anti_aliasing=True)
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    r, theta = np.hypot(x, y), np.arctan2(y, x)
    swirl = 0.5 + 0.5 * np.sin(10 * r + 3 * theta)
    field = np.clip(0.55 * swirl + 0.45 * tex, 0, 1)
    rgb = matplotlib.colormaps["plasma"](field)[..., :3]
    strokes = 0.85 + 0.15 * np.sin(40 * (x + 0.3 * np.sin(6 * y)))[..., None]
    return (np.clip(rgb * strokes, 0, 1) * 255).round().astype(np.uint8)


def root() -> Path:
    return paths.cache_dir() / "demo-data"


def materialize(target: Path | None = None) -> Path:
    """Write the demo data set (idempotent) and return its root folder."""
    target = target or root()
    jobs = [(f"train/demo/{n}.png", lambda n=n: sample(n)) for n in TRAIN]
    jobs += [(f"content/demo/{n}.png", lambda n=n: sample(n)) for n in CONTENT]
    jobs += [(f"sr/Demo/{n}.png", lambda n=n: sample(n)) for n in SR]
    jobs += [(STYLE_FILE, style_image)]
    for rel, make in jobs:
        if not (target / rel).is_file():
            write_image(from_array(make()), target / rel)
    return target
