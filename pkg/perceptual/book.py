"""The book: run the computations, execute the notebooks with papermill, build with Jupyter Book.

Sources are MyST text notebooks in ``book/`` (jupytext), never executed in place. For a
profile P, :func:`reproduce` writes executed copies to ``results/P/book/`` (with the book's
``_config.yml`` and ``_toc.yml`` beside them) and :func:`build` renders that folder to
``book/_build/html``. Computation lives in :mod:`perceptual.experiments` and is cached by config
hash, so a rerun reuses finished models and tables and an interrupted run continues.

Helpers for notebooks: :func:`setup` (the parameters cell's values → a context),
:func:`caption` (what produced a figure), :func:`image_grid`.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from . import paths, profiles, store

# chapter → the computation it needs (run before the notebooks, with progress bars)
CHAPTERS: dict[str, str | None] = {
    "intro": None,
    "claims": None,  # reads what the other chapters computed (run last among notebooks)
    "methods": None,
    "inversion": "inversion",
    "objective": "objective",
    "qualitative": "qualitative",
    "speed": "speed",
    "superres": "superres",
    "custom_loss": None,
}
STATIC = ("_config.yml", "_toc.yml", "references.md")


def choose_profile(name: str | None) -> tuple[str, str]:
    """(profile, reason): an explicit name wins; else paper with a CUDA GPU, demo without."""
    if name:
        return name, "asked for"
    env = os.environ.get("PERCEPTUAL_PROFILE")
    if env:
        return env, "PERCEPTUAL_PROFILE"
    import torch

    if torch.cuda.is_available():
        return "paper", f"a CUDA GPU is present ({torch.cuda.get_device_name(0)})"
    return "demo", "no CUDA GPU is present"


def staging(profile: str) -> Path:
    return paths.results_dir() / profile / "book"


def execute(name: str, profile: str, device: str | None = None) -> Path:
    """Convert ``book/NAME.md`` to a notebook and execute it with papermill into results/."""
    import jupytext
    import papermill

    src = paths.book_dir() / f"{name}.md"
    out_dir = staging(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f".{name}.input.ipynb"
    jupytext.write(jupytext.read(src), raw, fmt="ipynb")
    params = {"profile": profile, "device": device or "auto",
              "data_root": str(paths.data_root()) if paths.data_root_is_mirror() else None,
              "results": str(paths.results_dir())}
    target = out_dir / f"{name}.ipynb"
    with store.atomic_path(target) as tmp:
        tmp_nb = tmp.with_suffix(".ipynb")
        try:
            papermill.execute_notebook(str(raw), str(tmp_nb), parameters=params, kernel_name="python3",
                                       cwd=str(out_dir), progress_bar=False, log_output=False)
            tmp_nb.replace(tmp)
        finally:
            tmp_nb.unlink(missing_ok=True)
    raw.unlink(missing_ok=True)
    return target


def reproduce(profile: str | None = None, only: str | None = None, build: bool = True,
              device: str | None = None) -> int:
    """Compute, execute every notebook (or ``only`` one), build the book. Returns an exit code."""
    import logging

    from . import experiments

    name, why = choose_profile(profile)
    log_file = paths.results_dir() / name / "reproduce.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("perceptual")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    say = lambda msg: (print(msg, flush=True), root.info(msg))  # noqa: E731
    say(f"profile: {name} ({why}); log: {log_file}")
    prof = profiles.get(name)
    say(profiles.describe(prof))
    chapters = [only] if only else list(CHAPTERS)
    unknown = [c for c in chapters if c not in CHAPTERS]
    if unknown:
        print(f"error: unknown chapter {unknown[0]!r}; chapters: {', '.join(CHAPTERS)}", file=sys.stderr)
        return 2
    ctx = experiments.Context.create(prof, device)
    try:
        for chapter in chapters:
            if CHAPTERS[chapter]:
                say(f"[compute] {chapter}")
                say(f"  → {experiments.STEPS[CHAPTERS[chapter]](ctx, progress=True)}")
        for chapter in chapters:
            say(f"[notebook] {chapter}")
            say(f"  → {execute(chapter, name, device)}")
        rc = globals()["build"](name) if build else 0
        say(f"done (exit {rc})")
        return rc
    finally:
        root.removeHandler(handler)
        handler.close()


def build(profile: str | None = None) -> int:
    """Render ``results/PROFILE/book`` (executed notebooks) into ``book/_build/html``."""
    name = profile or _latest_profile()
    if name is None:
        print("error: no executed notebooks under results/*/book: run `make reproduce` first", file=sys.stderr)
        return 2
    src = staging(name)
    for f in STATIC:
        shutil.copy2(paths.book_dir() / f, src / f)
    missing = [c for c in CHAPTERS if not (src / f"{c}.ipynb").is_file()]
    if missing:
        print(f"error: chapters not executed for profile {name}: {', '.join(missing)} (run `make reproduce`)",
              file=sys.stderr)
        return 2
    out = paths.book_dir()
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src), "--path-output", str(out),
           "-W", "-n", "--keep-going"]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc == 0:
        problems = check_html(out / "_build" / "html")
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        rc = 1 if problems else 0
        print(f"book: {out / '_build' / 'html' / 'index.html'}")
    return rc


def _latest_profile() -> str | None:
    books = sorted(paths.results_dir().glob("*/book"), key=lambda p: p.stat().st_mtime)
    return books[-1].parent.name if books else None


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images += [v for k, v in attrs if k == "src" and v]


def check_html(html: Path) -> list[str]:
    """Every chapter has a page, and every image a page references exists."""
    problems = [f"missing page {c}.html" for c in CHAPTERS if not (html / f"{c}.html").is_file()]
    for page in sorted(html.glob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for src in parser.images:
            if src.startswith("data:") or re.match(r"^[a-z]+://", src):
                continue
            if not (page.parent / src.split("#")[0].split("?")[0]).is_file():
                problems.append(f"{page.name}: image {src} does not exist")
    return problems


# ---------------------------------------------------------------------------------------------
# notebook helpers


def setup(profile: str, device: str | None = None, data_root: str | None = None, results: str | None = None):
    """Apply a notebook's parameters and return an :class:`perceptual.experiments.Context`."""
    from . import experiments

    if data_root:
        os.environ["PERCEPTUAL_DATA_ROOT"] = data_root
    if results:
        os.environ["PERCEPTUAL_RESULTS"] = results
    return experiments.Context.create(profiles.get(profile), None if device in (None, "auto") else device)


def caption(table: Path, what: str, extra: str = "") -> str:
    """Markdown stating what produced ``table``: profile, loss network, data, config, hardware."""
    meta = store.read_meta(table)
    hw = meta.get("hardware", {})
    machine = hw.get("gpu") or f"{hw.get('cpu', '?')} ({hw.get('cpu_threads', '?')} threads)"
    summary = f" {meta['summary']}." if meta.get("summary") else ""
    return (f"**{what}** {extra}{summary} Profile `{meta.get('profile')}`, loss network "
            f"`{meta.get('loss_network')}`, data root `{meta.get('data_root')}`, device {hw.get('device')} — "
            f"{machine}, torch {hw.get('torch')}, code `{meta.get('code_version')}`, computed "
            f"{meta.get('created')}.").strip()


def image_grid(rows: list[list[Path | None]], titles: list[str] | None = None, row_labels: list[str] | None = None,
               size: float = 2.2, zoom: tuple[float, float, float] | None = None):
    """A matplotlib figure of image files (None leaves a blank cell). ``zoom=(cy, cx, frac)``
    shows the square of side ``frac`` (of the shorter side) centred at (cy, cx), pixels enlarged."""
    import matplotlib.pyplot as plt
    from PIL import Image

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            path = row[j] if j < len(row) else None
            if path is not None:
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    if zoom:
                        cy, cx, frac = zoom
                        half = frac * min(im.size) / 2
                        im = im.crop((round(cx * im.width - half), round(cy * im.height - half),
                                      round(cx * im.width + half), round(cy * im.height + half)))
                    ax.imshow(im, interpolation="nearest" if zoom else "antialiased")
            if titles and i == 0 and j < len(titles):
                ax.set_title(titles[j], fontsize=9)
            if row_labels and j == 0:
                ax.text(-0.05, 0.5, row_labels[i], transform=ax.transAxes, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig

