"""Published results: a small, committed copy of one profile's run (``results/published/<profile>/``)
and the comparison of a fresh run against it.

:func:`publish` copies what the book reads — every table with its ``.meta.json``, the figure
images (downsized so the longer side is at most ``max_side`` px, PNG), the training logs and the
trained networks in fp16 — and refuses to exceed ``budget_mb``. :func:`compare` recomputes the
headline numbers of both runs (the Claims chapter's evidence, the SR table, Fig. 5) and says, per
number, whether the fresh run is within the stated tolerance of the published one.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perceptual.study import claims
from perceptual.core import paths, store

CHAPTER_DIRS = ("inversion", "objective", "qualitative", "speed", "superres", "custom_loss")
RUN_FILES = ("log.csv", "val.csv", "train.log")


def _downsized_png(src: Path, dst: Path, max_side: int) -> None:
    from PIL import Image

    with Image.open(src) as im:
        im = im.convert("RGB")
        if max(im.size) > max_side:
            scale = max_side / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
        with store.atomic_path(dst) as tmp:
            im.save(tmp, format="PNG", optimize=True)


def _fp16_model(src: Path, dst: Path) -> None:
    ckpt = store.load_torch(src)
    state = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    meta = {**ckpt["meta"], "published_dtype": "float16"}
    store.atomic_torch_save({"model": state, "meta": meta}, dst)


def _sr_examples(files: list[Path], n: int) -> set[str]:
    """The super-resolution images of the first ``n`` test images per factor (in the order the SR
    chapter shows them: sorted by set and image). They stay full size: detail is the point."""
    groups: dict[str, list[str]] = {}
    for f in files:
        if f.name.endswith("_hr.png"):
            prefix = f.name[: -len("_hr.png")]  # <set>_<image>_x<f>
            groups.setdefault(prefix.rsplit("_", 1)[1], []).append(prefix)
    chosen = [p for prefixes in groups.values() for p in sorted(prefixes)[:n]]
    return {f.name for f in files for p in chosen if f.name.startswith(p + "_")}


def publish(profile: str, max_side: int = 512, budget_mb: float = 30.0, source: Path | None = None,
            target: Path | None = None, sr_examples: int = 2) -> Path:
    """Copy ``results/<profile>`` into ``results/published/<profile>`` (replacing it); of the SR
    example images, those of ``sr_examples`` test images per factor."""
    src = source or paths.results_dir() / profile
    dst = target or paths.published_dir() / profile
    if not (src / "objective").is_dir() and not (src / "superres").is_dir():
        raise FileNotFoundError(f"{src} holds no computed results; run `make reproduce PROFILE={profile}` first")
    staging = dst.with_name(f".{dst.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    for chapter in CHAPTER_DIRS:
        files = sorted((src / chapter).glob("*")) if (src / chapter).is_dir() else []
        keep = _sr_examples(files, sr_examples) if chapter == "superres" else None
        for f in files:
            if f.suffix in (".csv", ".json"):
                (staging / chapter).mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, staging / chapter / f.name)
            elif f.suffix == ".png" and (keep is None or f.name in keep):
                _downsized_png(f, staging / chapter / f.name, max_side)
    for f in ("step_times.json", "reproduce.log"):
        if (src / f).is_file():
            shutil.copy2(src / f, staging / f)
    for model in sorted((src / "models").glob("*/model.pt")):
        run = staging / "models" / model.parent.name
        run.mkdir(parents=True, exist_ok=True)
        _fp16_model(model, run / "model.pt")
        for name in RUN_FILES:
            if (model.parent / name).is_file():
                shutil.copy2(model.parent / name, run / name)
    size = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()) / 2 ** 20
    if size > budget_mb:
        shutil.rmtree(staging)
        raise ValueError(f"published results would take {size:.1f} MB > {budget_mb} MB; lower max_side")
    if dst.exists():
        shutil.rmtree(dst)
    staging.rename(dst)
    return dst


# ---------------------------------------------------------------------------------------------
# comparing a fresh run with the published one


@dataclass(frozen=True)
class Tolerance:
    absolute: float = 0.0
    relative: float = 0.0

    def holds(self, published: float, fresh: float) -> bool:
        if np.isinf(published) or np.isinf(fresh):
            return published == fresh
        return abs(fresh - published) <= self.absolute + self.relative * abs(published)

    def __str__(self) -> str:
        parts = ([f"±{self.absolute:g}"] if self.absolute else []) + \
            ([f"±{self.relative:.0%}"] if self.relative else [])
        return " + ".join(parts) or "equal"


# what may move between runs on other hardware or library versions (seeded runs on the same
# machine agree to the printed digits; bf16 and thread counts move the last ones)
TOLERANCES = {
    "psnr": Tolerance(absolute=0.3), "ssim": Tolerance(absolute=0.01),
    "bicubic_psnr": Tolerance(absolute=0.01), "objective": Tolerance(relative=0.2),
    "matched_at": Tolerance(relative=0.5, absolute=5), "inversion_psnr": Tolerance(absolute=1.0),
}


def _numbers_of(root: Path, profile: str) -> dict[str, tuple[float | str, str]]:
    """:func:`_numbers`, with an error of a shape :func:`check_tables` does not foresee named by its run folder."""
    try:
        return _numbers(root, profile)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as err:
        raise MalformedTable(f"{root / profile}: a results table there has an unexpected shape "
                             f"({type(err).__name__}: {(str(err).splitlines() or [''])[0]})") from err


def _numbers(root: Path, profile: str) -> dict[str, tuple[float | str, str]]:
    """(value, tolerance key) by name, for one run's results."""
    res = claims.Results(profile, root)
    out: dict[str, tuple[float | str, str]] = {}
    for row in claims.evaluate(profile, root).itertuples():
        out[f"{row.claim} verdict"] = (row.verdict, "verdict")
    eq = claims.fig5(res)
    if eq is not None:
        for size, g in eq.groupby("size"):
            out[f"Fig. 5 {size}² network Eq. 5 (median)"] = (float(g.network.median()), "objective")
            out[f"Fig. 5 {size}² L-BFGS iterations to match (median)"] = (float(g.matched_at.median()), "matched_at")
    s = claims.sr_table(res)
    if s is not None:
        for r in s.itertuples():
            name = f"SR ×{r.factor} {r.dataset} {r.method}"
            out[f"{name} PSNR"] = (float(r.psnr), "bicubic_psnr" if r.method == "bicubic" else "psnr")
            out[f"{name} SSIM"] = (float(r.ssim), "ssim")
    inv = claims.inversion_measures(res)
    if inv is not None:
        for r in inv[inv.figure == "fig3"].itertuples():
            out[f"Fig. 3 {r.layer} PSNR"] = (float(r.psnr), "inversion_psnr")
    return out


class MalformedTable(ValueError):
    """A results table :func:`compare` reads is truncated or lacks what it needs; names the file."""


# what _numbers (through claims) reads of each table: the columns, every row's key columns filled
TABLE_COLUMNS = {
    "objective/objective.csv": ("size", "image", "method", "objective"),
    "superres/sr_summary.csv": ("dataset", "factor", "method", "psnr", "ssim"),
    "inversion/inversion.csv": ("figure", "layer"),
    "speed/speed.csv": ("size", "feedforward", "gatys_per_iteration", "speedup_500"),
    "qualitative/qualitative.csv": ("size", "style", "image", "method", "objective"),
}


def check_tables(root: Path, profile: str, fix: str) -> None:
    """:class:`MalformedTable` naming the first table of ``root/profile`` that :func:`compare`
    cannot read whole: cut mid-row (every table is written with a final newline), unparsable,
    missing a column or a value, or missing rows its ``.meta.json`` or its other rows imply (a
    truncation at a row boundary). ``fix``: what to do about it."""
    for rel, columns in TABLE_COLUMNS.items():
        path = root / profile / rel
        if not path.is_file():
            continue  # not computed: its numbers are reported as missing, not an error
        problem = _table_problem(path, columns)
        if problem:
            raise MalformedTable(f"{path}: {problem}; {fix}")


def _table_problem(path: Path, columns: tuple[str, ...]) -> str | None:
    blob = path.read_bytes()
    if not blob.strip():
        return "empty (truncated)"
    if not blob.endswith(b"\n"):
        return "ends in the middle of a row (truncated)"
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        return f"not a readable table ({type(err).__name__}: {(str(err).splitlines() or [''])[0]})"
    missing = [c for c in columns if c not in frame]
    if missing:
        return f"no column {', '.join(missing)} (has {', '.join(map(str, frame.columns))})"
    if not len(frame):
        return "no rows (truncated)"
    empty = [c for c in columns if frame[c].isna().any()]
    if empty:
        row = int(frame[columns].isna().any(axis=1).to_numpy().argmax()) + 2  # 1-based, after the header
        return f"no value for {', '.join(empty)} in line {row}"
    if path.name == "sr_summary.csv":
        models = (store.read_meta(path).get("models") or {}) if store.meta_path(path).is_file() else {}
        want = {(int(f), m) for f, ms in models.items() for m in ms} | {(int(f), "bicubic") for f in models}
        have = set(zip(frame["factor"].astype(int), frame["method"]))
        lost = sorted(want - have)
        if lost:
            return ("no rows for " + ", ".join(f"×{f} {m}" for f, m in lost) +
                    " (its .meta.json lists them: truncated?)")
    if path.name == "objective.csv":
        for (size, image), g in frame.groupby(["size", "image"]):
            lost = [m for m in ("feedforward", "content", "gatys") if m not in set(g.method)]
            if lost:
                return f"no {', '.join(lost)} row for size {size}, image {image} (truncated?)"
    return None


def compare(profile: str, fresh: Path | None = None, published: Path | None = None) -> pd.DataFrame:
    """One row per number: published, fresh, tolerance, within (bool). A table of either run that
    is truncated or malformed is :class:`MalformedTable` naming it and what it lacks."""
    fresh_root = fresh or paths.results_dir()
    pub_root = published or paths.published_dir()
    if not (pub_root / profile).is_dir():
        raise FileNotFoundError(f"no published results for profile {profile!r} under {pub_root}")
    if not (fresh_root / profile).is_dir():
        raise FileNotFoundError(f"no fresh results for profile {profile!r} under {fresh_root}; "
                                f"run `make reproduce PROFILE={profile}` first")
    check_tables(pub_root, profile, "restore the published copy (git checkout -- results/published)")
    check_tables(fresh_root, profile, f"recompute it (make reproduce PROFILE={profile})")
    a, b = _numbers_of(pub_root, profile), _numbers_of(fresh_root, profile)
    rows = []
    for name in sorted(set(a) | set(b), key=lambda n: (n not in a, n)):
        (pv, key), (fv, _) = a.get(name, (None, "")), b.get(name, (None, ""))
        if pv is None or fv is None:
            rows.append({"number": name, "published": pv, "fresh": fv, "tolerance": "—", "within": False})
            continue
        if key == "verdict":
            rows.append({"number": name, "published": pv, "fresh": fv, "tolerance": "equal", "within": pv == fv})
        else:
            tol = TOLERANCES[key]
            rows.append({"number": name, "published": pv, "fresh": fv, "tolerance": str(tol),
                         "within": tol.holds(float(pv), float(fv))})
    return pd.DataFrame(rows)


def publish_bench(table: Path, code_version: str | None = None) -> Path:
    """Copy a ``perceptual bench`` table (and its ``.meta.json``) measured on another machine into
    ``results/published/benchmarks/<profile>-<hardware>-<time>.csv``, where every book's Speed
    chapter shows it (one file per run: runs on one machine are shown side by side); a
    ``--sensitivity`` table goes to ``benchmarks/sensitivity/``, shown below the profile's own.
    ``code_version`` corrects what a run recorded where its checkout's history was stale (a tree
    copied to a lent machine); the recorded value is kept as ``code_version_recorded``."""
    import re

    table = Path(table)
    if not table.is_file() or not store.meta_path(table).is_file():
        raise FileNotFoundError(f"{table}: not a bench table with its .meta.json beside it "
                                f"(run `perceptual bench` first; it writes results/<profile>/speed/bench.csv)")
    frame, meta = pd.read_csv(table), store.read_meta(table)
    sensitivity = "curve" in frame and "ratio" in frame
    if ("kind" not in frame and not sensitivity) or "hardware" not in frame:
        raise ValueError(f"{table}: neither a bench table (kind, hardware) nor a sensitivity table (curve, ratio, "
                         "hardware)")
    if code_version:
        meta = {**meta, "code_version": code_version, "code_version_recorded": meta.get("code_version")}
    name = f"{meta.get('profile', 'unknown')}-{frame.hardware.iloc[0]}-{meta.get('created', '')[:16]}"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    dst = (paths.published_sensitivity_dir() if sensitivity else paths.published_benchmarks_dir()) / f"{slug}.csv"
    store.write_table(frame, dst, meta)
    return dst
