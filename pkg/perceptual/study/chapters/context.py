"""What every chapter's runner shares: the :class:`Context` a profile runs in, the :func:`runner`
decorator, the cache check, and the trained style and SR networks (cached by config hash under
``results/<profile>/models/``) that several chapters and the training jobs use.

Data come from the profile: ``demo`` materialises the embedded data set; the others read the
data root and stop with :class:`perceptual.core.data.DataMissing` when a folder is absent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from perceptual.core import data, demo, images, paths, store
from perceptual.core.config import PAPER, STYLES
from perceptual.study.profiles import Profile, sr_network_iterations, sr_schedule
from perceptual.method.train import config_hash, pick_device, train_style
from perceptual.method.vgg import VGGFeatures, load_vgg


@dataclass(frozen=True)
class Context:
    """Where a profile reads data and writes results, and on which device."""

    profile: Profile
    device: torch.device
    root: Path

    @classmethod
    def create(cls, profile: Profile, device: str | None = None) -> "Context":
        root = demo.materialize() if profile.data == "demo" else paths.data_root()
        return cls(profile, pick_device(device), root)

    def data(self, rel: str) -> Path:
        """A file or folder under the data root; DataMissing naming the dataset if absent. The
        profile's ``data_aliases`` (smokes only) name folders read in place of others."""
        rel = dict(self.profile.data_aliases).get(rel, rel)
        path = self.root / rel
        if path.is_file() or (path.is_dir() and data.list_images(path)):
            return path
        owner = next((d.name for d in data.registry().values()
                      if rel == d.folder or rel.startswith(d.folder + "/")), None)
        hint = (f"run `perceptual data fetch {owner}`" if owner else "check the data root") + \
            " or set PERCEPTUAL_DATA_ROOT (make DATA_ROOT=…) to a mirror that has it"
        raise data.DataMissing(f"{rel} is missing under the data root {self.root} "
                               f"(dataset {owner or '?'}); {hint}")

    def out(self, chapter: str) -> Path:
        folder = paths.results_dir() / self.profile.name / chapter
        if not paths.read_only():
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def net(self, name: str | None = None) -> VGGFeatures:
        return load_vgg(name or self.profile.loss_network, self.device)

    def content_files(self, n: int) -> list[Path]:
        files = data.list_images(self.data(self.profile.content_dir))
        return files[:n]

    def meta(self, config, **extra) -> dict:
        return store.provenance(config, getattr(config, "seed", None), self.profile.loss_network, self.device,
                                profile=self.profile.name, data_root=str(self.root), **extra)


def runner(chapter: str, table: str):
    """Marks a step that writes ``results/<profile>/<chapter>/<table>``. In read-only mode (a book
    rendered from published results, :func:`perceptual.core.paths.read_only`) the step returns that
    table without computing anything, or says that it is missing."""
    import functools

    def wrap(step):
        @functools.wraps(step)
        def run_step(ctx: "Context", *args, **kwargs) -> Path:
            if paths.read_only():
                path = paths.results_dir() / ctx.profile.name / chapter / table
                if not path.is_file():
                    raise data.DataMissing(f"{path} is not in the results being rendered; regenerate it with "
                                           f"`make reproduce PROFILE={ctx.profile.name}`")
                return path
            return step(ctx, *args, **kwargs)
        return run_step
    return wrap


def _done(path: Path, key: str) -> bool:
    """True when ``path`` exists and its meta records the same config key."""
    try:
        return path.is_file() and store.read_meta(path).get("key") == key
    except (OSError, json.JSONDecodeError):
        return False


def square_image(path: Path, size: int) -> torch.Tensor:
    return images.square(images.read_image(path), size, "center")[None]  # (1, 3, s, s)


# ---------------------------------------------------------------------------------------------
# trained style networks, cached by config hash


def loader_workers(ctx: Context) -> int:
    """Data-loading processes for this context's device (:func:`perceptual.method.train.loader_workers`)."""
    from perceptual.method.train import loader_workers as workers

    return workers(ctx.device)


def style_entry(style_file: str) -> dict | None:
    """The authors' per-style row (:data:`perceptual.core.config.STYLES`) for a style file (relative
    to the data root), looked up by the table's ``file`` column — ``…/wave.jpg`` is ``the_wave`` —;
    where two rows share a file the first wins (``la_muse`` before ``la_muse_in``). None: not listed."""
    rel = Path(style_file).as_posix()
    return next((s for s in STYLES.values() if s["file"] == rel), None)


def style_config(ctx: Context, style_file: str):
    """The profile's training config for one style. Styles in the authors' table
    (:data:`perceptual.core.config.STYLES`, matched by :func:`style_entry`) get their name and λ_c,
    λ_s, λ_TV; sizes, iterations and the architecture stay the profile's."""
    p = ctx.profile
    s = style_entry(style_file)
    cfg = replace(p.style, style=s["name"] if s else Path(style_file).stem)
    if s and p.authors_weights:
        cfg = replace(cfg, loss=replace(cfg.loss, content_weight=s["content_weight"],
                                        style_weight=s["style_weight"], tv_weight=s["tv_weight"]))
    return cfg


def models_dir(profile: Profile) -> Path:
    return paths.results_dir() / profile.name / "models"


def style_run_dir(ctx: Context, style_file: str) -> Path:
    """The run folder of ``style_file``'s network: named by style and config hash."""
    cfg = style_config(ctx, style_file)
    return models_dir(ctx.profile) / f"style-{cfg.style}-{config_hash(cfg)}"


def style_model_path(ctx: Context, style_file: str) -> Path:
    """Where the trained network for ``style_file`` under this profile is (or will be)."""
    return style_run_dir(ctx, style_file) / "model.pt"


def style_model(ctx: Context, style_file: str, progress: bool = True) -> Path:
    """The trained network for ``style_file`` under this profile (trains it if missing)."""
    cfg = style_config(ctx, style_file)
    run_dir = style_run_dir(ctx, style_file)
    model = run_dir / "model.pt"
    if not model.is_file():
        train_dirs = [ctx.data(d) for d in ctx.profile.train_dirs]
        train_style(cfg, ctx.data(style_file), train_dirs, run_dir, ctx.device, progress=progress,
                    workers=loader_workers(ctx))
    return model


# ---------------------------------------------------------------------------------------------
# SR networks, cached by config hash (the super-resolution chapter, the training jobs)


SR_METHODS = ("pixel", "feat", "srcnn")


def sr_methods(factor: int) -> tuple[str, ...]:
    """The SR networks trained for ``factor``: SRCNN at ×4 only, as in the paper."""
    return tuple(m for m in SR_METHODS if m != "srcnn" or factor == 4)


def sr_config(ctx: Context, factor: int, method: str):
    """The profile's SR config for one network: its factor and iteration budget
    (:func:`perceptual.study.profiles.sr_network_iterations`)."""
    return replace(ctx.profile.sr, factor=factor, iterations=sr_network_iterations(ctx.profile, factor, method))


def trained_iterations(model_meta: dict | None) -> int | None:
    """The iterations a network was really trained for, from its ``model.pt`` meta: where its
    training segments end (every process that trained it), else the iterations its config asked
    for (a model written before segments were recorded); None when the meta has neither."""
    meta = model_meta or {}
    ends = [s["iterations"][1] for s in meta.get("segments") or [] if isinstance(s.get("iterations"), list)]
    if ends:
        return int(max(ends))
    cfg = (meta.get("provenance") or {}).get("config") or {}
    return int(cfg["iterations"]) if isinstance(cfg.get("iterations"), (int, float)) else None


def sr_run_dir(ctx: Context, factor: int, method: str) -> Path:
    """The run folder of one SR network: named by factor, method and config hash."""
    from perceptual.method.superres import run_key

    key = config_hash(run_key(sr_config(ctx, factor, method), method, ctx.profile.sr_train_images))
    return models_dir(ctx.profile) / f"sr-x{factor}-{method}-{key}"


def sr_model(ctx: Context, factor: int, method: str, progress: bool = True) -> Path:
    """A trained SR network (pixel / feat / srcnn) for ``factor``, trained if missing, on the
    profile's ``sr_train_images`` subset (0: all photos; the run folder hash is then unchanged)."""
    from perceptual.method.superres import train_sr

    p = ctx.profile
    cfg = sr_config(ctx, factor, method)
    run_dir = sr_run_dir(ctx, factor, method)
    model = run_dir / "model.pt"
    if not model.is_file():
        train_sr(cfg, method, [ctx.data(d) for d in p.train_dirs], run_dir, ctx.device, progress=progress,
                 workers=loader_workers(ctx), subset=p.sr_train_images)
    return model


# ---------------------------------------------------------------------------------------------
# what the runs really used (the methods chapter)


def build_preset(ctx: Context):
    """This profile as a :class:`perceptual.core.config.Preset` with the values its runs use: the Fig. 5
    / Table 1 style's per-style λ (:func:`style_config`), the profile's L-BFGS iterations, and the
    training precision resolved for this context's device (``auto`` → bf16 or fp32)."""
    from perceptual.core.config import Preset
    from perceptual.runtime.precision import resolve

    p = ctx.profile
    style = style_config(ctx, p.style_file)
    style = replace(style, precision=resolve(style.precision, ctx.device))
    gatys_cfg = replace(PAPER.gatys, iterations=p.fig5_iterations, loss=style.loss)
    # not one number: ×4 and ×8 (and SRCNN) may train for different counts (issue 26)
    sr = replace(p.sr, precision=resolve(p.sr.precision, ctx.device), iterations=sr_schedule(p))
    return Preset(f"this build ({p.name})", style, gatys_cfg, sr, PAPER.median_filter)


def trained_runs(ctx: Context) -> pd.DataFrame:
    """One row per trained network of this profile (``results/<profile>/models/*/model.pt``): the
    λ, iterations (:func:`trained_iterations`), training photos and precision it was really trained with."""
    rows = []
    for model in sorted((paths.results_dir() / ctx.profile.name / "models").glob("*/model.pt")):
        meta = store.read_meta_or_none(model) or {}
        prov = meta.get("provenance") or {}
        cfg = prov.get("config") or {}
        loss = cfg.get("loss") if isinstance(cfg.get("loss"), dict) else {}
        rows.append({"run": model.parent.name, "kind": meta.get("kind"), "style": meta.get("style"),
                     "method": meta.get("method"), "iterations": trained_iterations(meta),
                     "λ_c": loss.get("content_weight"), "λ_s": loss.get("style_weight"),
                     "λ_TV": loss.get("tv_weight", cfg.get("tv_weight")),
                     "training photos": prov.get("train_images"),
                     "precision": prov.get("precision") or ("bf16 autocast" if cfg.get("amp") else "fp32")})
    return pd.DataFrame(rows, columns=["run", "kind", "style", "method", "iterations", "λ_c", "λ_s", "λ_TV",
                                       "training photos", "precision"])
