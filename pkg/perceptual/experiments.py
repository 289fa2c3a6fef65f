"""Runners that compute each style-transfer figure and table and write them under
``results/<profile>/<chapter>/`` (CSV + ``.meta.json`` + images). Notebooks call these, then plot
what they wrote. Every runner skips work whose outputs exist for the same config hash.

Data come from the profile: ``demo`` materialises the embedded data set; the others read the
data root and stop with :class:`perceptual.data.DataMissing` when a folder is absent.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from . import bench, data, demo, gatys, images, paths, store
from .config import PAPER, STYLES, GatysConfig
from .objective import Objective
from .profiles import Profile
from .stylize import inference_model, run
from .train import config_hash, load_model, pick_device, style_target, train_style
from .vgg import VGGFeatures, load_vgg

log = logging.getLogger("perceptual.experiments")

FEATURE_LAYERS = ("relu2_2", "relu3_3", "relu4_3", "relu5_1", "relu5_3")  # paper Fig. 3
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # paper Fig. 4


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
        """A file or folder under the data root; DataMissing naming the dataset if absent."""
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
    """Data-loading processes: several on a GPU box (decoding would starve the GPU), none on a CPU."""
    import os

    return min(8, os.cpu_count() or 1) if ctx.device.type == "cuda" else 0


def style_entry(style_file: str) -> dict | None:
    """The authors' per-style row (:data:`perceptual.config.STYLES`) for a style file (relative
    to the data root), looked up by the table's ``file`` column — ``…/wave.jpg`` is ``the_wave`` —;
    where two rows share a file the first wins (``la_muse`` before ``la_muse_in``). None: not listed."""
    rel = Path(style_file).as_posix()
    return next((s for s in STYLES.values() if s["file"] == rel), None)


def style_config(ctx: Context, style_file: str):
    """The profile's training config for one style. Styles in the authors' table
    (:data:`perceptual.config.STYLES`, matched by :func:`style_entry`) get their name and λ_c,
    λ_s, λ_TV; sizes, iterations and the architecture stay the profile's."""
    p = ctx.profile
    s = style_entry(style_file)
    cfg = replace(p.style, style=s["name"] if s else Path(style_file).stem)
    if s and p.authors_weights:
        cfg = replace(cfg, loss=replace(cfg.loss, content_weight=s["content_weight"],
                                        style_weight=s["style_weight"], tv_weight=s["tv_weight"]))
    return cfg


def style_model(ctx: Context, style_file: str, progress: bool = True) -> Path:
    """The trained network for ``style_file`` under this profile (trains it if missing)."""
    cfg = style_config(ctx, style_file)
    run_dir = paths.results_dir() / ctx.profile.name / "models" / f"style-{cfg.style}-{config_hash(cfg)}"
    model = run_dir / "model.pt"
    if not model.is_file():
        train_dirs = [ctx.data(d) for d in ctx.profile.train_dirs]
        train_style(cfg, ctx.data(style_file), train_dirs, run_dir, ctx.device, progress=progress,
                    workers=loader_workers(ctx))
    return model


# ---------------------------------------------------------------------------------------------
# Fig. 3 and Fig. 4: inversions


def inversions(ctx: Context, progress: bool = True) -> Path:
    p = ctx.profile
    out = ctx.out("inversion")
    table = out / "inversion.csv"
    cfg = gatys.feature_inversion_config(p.inversion_iterations)
    key = config_hash((cfg, p.inversion_size, p.loss_network, p.content_dir, p.style_file))
    if _done(table, key):
        return table
    net = ctx.net()
    content = square_image(ctx.content_files(1)[0], p.inversion_size).to(ctx.device)
    style = style_target(ctx.data(p.style_file), p.inversion_size).to(ctx.device)
    images.write_image(content, out / "feature_target.png")
    images.write_image(style, out / "style_target.png")
    rows = []
    for layer in FEATURE_LAYERS:
        r = gatys.invert_features(net, content, layer, cfg, progress)
        images.write_image(r.image, out / f"feature_{layer}.png")
        rows += [{"figure": "fig3", "layer": layer, **h} for h in r.history]
    for layer in STYLE_LAYERS:
        r = gatys.invert_style(net, style, (layer,), (p.inversion_size, p.inversion_size), cfg, progress)
        images.write_image(r.image, out / f"style_{layer}.png")
        rows += [{"figure": "fig4", "layer": layer, **h} for h in r.history]
    summary = (f"{p.inversion_size}² images, {p.inversion_iterations} L-BFGS iterations from white noise, "
               f"content {ctx.content_files(1)[0].name}, style {p.style_file}")
    store.write_table(pd.DataFrame(rows), table, {**ctx.meta(cfg, size=p.inversion_size), "key": key,
                                                 "summary": summary})
    return table


# ---------------------------------------------------------------------------------------------
# Fig. 5: objective values


def objective_curves(ctx: Context, progress: bool = True) -> Path:
    """Eq. 5 per L-BFGS iteration for the baseline, and for the network's output and the content
    image itself, on ``fig5_images`` images at each ``fig5_sizes``."""
    p = ctx.profile
    model_path = style_model(ctx, p.style_file, progress)
    loss = style_config(ctx, p.style_file).loss  # the same Eq. 5 the network was trained on
    cfg = replace(GatysConfig(), iterations=p.fig5_iterations, loss=loss, seed=p.style.seed)
    out = ctx.out("objective")
    table = out / "objective.csv"
    key = config_hash((cfg, p.fig5_sizes, p.fig5_images, p.content_dir, str(model_path),
                       store.read_meta_or_none(model_path)))
    if _done(table, key):
        return table
    net = ctx.net(loss.network)
    model, _ = load_model(model_path, ctx.device)
    fast = inference_model(model, ctx.device)
    style = style_target(ctx.data(p.style_file), p.style.style_size).to(ctx.device)
    objective = Objective(net, loss, style)
    rows = []
    for size in p.fig5_sizes:
        for path in ctx.content_files(p.fig5_images):
            content = square_image(path, size).to(ctx.device)
            targets = objective.content_targets(content)
            with torch.no_grad():
                for method, y in (("feedforward", run(fast, content)), ("content", content)):
                    rows.append({"size": size, "image": path.name, "method": method, "iteration": None,
                                 "objective": float(objective(y, targets)["total"])})
            hist = gatys.optimise(objective, (size, size), cfg, content, progress, desc=f"{size}² {path.name}").history
            rows += [{"size": size, "image": path.name, "method": "gatys", "iteration": h["iteration"],
                      "objective": h["total"]} for h in hist]
    summary = (f"sizes {', '.join(f'{s}²' for s in p.fig5_sizes)}, {p.fig5_images} images from {p.content_dir}, "
               f"{p.fig5_iterations} L-BFGS iterations; network trained {p.style.iterations} iterations at "
               f"{p.style.image_size}², batch {p.style.batch_size}, λ_c/λ_s/λ_TV = {loss.content_weight}/"
               f"{loss.style_weight}/{loss.tv_weight}")
    store.write_table(pd.DataFrame(rows), table, {**ctx.meta(cfg, model=str(model_path)), "key": key,
                                                 "summary": summary})
    return table


# ---------------------------------------------------------------------------------------------
# Fig. 6 / 7: qualitative results


def _terms(values: dict) -> dict:
    """Eq. 5 and its weighted terms, as table columns (claim C5 compares them separately)."""
    return {"objective": values["total"], "content": values["content"], "style": values["style"], "tv": values["tv"]}


def qualitative(ctx: Context, progress: bool = True) -> Path:
    """Baseline vs. ours for each style and size; images plus objective values and times."""
    p = ctx.profile
    out = ctx.out("qualitative")
    table = out / "qualitative.csv"
    models = {s: style_model(ctx, s, progress) for s in p.qualitative_styles}
    cfgs = {s: replace(GatysConfig(), iterations=p.fig5_iterations, loss=style_config(ctx, s).loss, seed=p.style.seed)
            for s in p.qualitative_styles}  # the baseline uses exactly the λ its network was trained with
    key = config_hash((list(cfgs.values()), p.qualitative_sizes, p.qualitative_images, p.content_dir,
                       [store.read_meta_or_none(m) for m in models.values()], "terms"))
    if _done(table, key):
        return table
    net = ctx.net(p.style.loss.network)
    rows = []
    for style_file, model_path in models.items():
        name, cfg = Path(style_file).stem, cfgs[style_file]
        model, _ = load_model(model_path, ctx.device)
        fast = inference_model(model, ctx.device)
        style = style_target(ctx.data(style_file), p.style.style_size).to(ctx.device)
        images.write_image(images.resize_longer(style, 256), out / f"style_{name}.png")
        objective = Objective(net, cfg.loss, style)
        for size in p.qualitative_sizes:
            for path in ctx.content_files(p.qualitative_images):
                content = square_image(path, size).to(ctx.device)
                targets = objective.content_targets(content)
                stem = f"{name}_{size}_{path.stem}"
                images.write_image(content, out / f"content_{size}_{path.stem}.png")
                ours = bench.median_time(lambda: run(fast, content), ctx.device, repeats=1, warmup=1)
                y = run(fast, content)
                images.write_image(y, out / f"ours_{stem}.png")
                with torch.no_grad():
                    ours_terms = {k: float(v) for k, v in objective(y, targets).items()}
                if size == min(p.qualitative_sizes):  # the paper shows the baseline at 256² only
                    r = gatys.optimise(objective, (size, size), cfg, content, progress, desc=f"baseline {stem}")
                    images.write_image(r.image, out / f"gatys_{stem}.png")
                    rows.append({"style": name, "size": size, "image": path.stem, "method": "gatys",
                                 **_terms(r.history[-1]), "seconds": r.history[-1]["seconds"]})
                rows.append({"style": name, "size": size, "image": path.stem, "method": "ours",
                             **_terms(ours_terms), "seconds": ours})
    summary = (f"sizes {', '.join(f'{s}²' for s in p.qualitative_sizes)}, content from {p.content_dir}; networks "
               f"trained {p.style.iterations} iterations at {p.style.image_size}²; baseline {p.fig5_iterations} "
               f"L-BFGS iterations")
    store.write_table(pd.DataFrame(rows), table, {**ctx.meta(cfgs, models={k: str(v) for k, v in models.items()}),
                                                 "key": key, "summary": summary})
    return table


# ---------------------------------------------------------------------------------------------
# Table 1: speed


def speed(ctx: Context, progress: bool = True) -> Path:
    p = ctx.profile
    model_path = style_model(ctx, p.style_file, progress)
    out = ctx.out("speed")
    table = out / "speed.csv"
    cfg = replace(GatysConfig(), loss=style_config(ctx, p.style_file).loss)
    key = config_hash((cfg, p.table1_sizes, p.table1_repeats, p.table1_gatys_iterations, str(ctx.device),
                       store.hardware(ctx.device)))
    if _done(table, key):
        return table
    net = ctx.net(cfg.loss.network)
    model, _ = load_model(model_path, ctx.device)
    style = style_target(ctx.data(p.style_file), p.style.style_size)
    rows = bench.speed_rows(model, net, style, p.table1_sizes, cfg, p.table1_repeats, p.table1_gatys_iterations,
                            ctx.device)
    summary = (f"sizes {', '.join(f'{s}²' for s in p.table1_sizes)}, {p.table1_repeats} repeats, "
               f"{p.table1_gatys_iterations} timed L-BFGS iterations per size")
    store.write_table(pd.DataFrame(rows), table, {**ctx.meta(cfg, model=str(model_path)), "key": key,
                                                 "summary": summary})
    return table


# ---------------------------------------------------------------------------------------------
# Fig. 8 / 9: super-resolution


SR_METHODS = ("pixel", "feat", "srcnn")


def sr_model(ctx: Context, factor: int, method: str, progress: bool = True) -> Path:
    """A trained SR network (pixel / feat / srcnn) for ``factor``, trained if missing, on the
    profile's ``sr_train_images`` subset (0: all photos; the run folder hash is then unchanged)."""
    from .superres import run_key, train_sr

    p = ctx.profile
    per_method = {(m, f): n for m, f, n in p.sr_method_iterations}
    iterations = per_method.get((method, factor), dict(p.sr_iterations).get(factor, p.sr.iterations))
    cfg = replace(p.sr, factor=factor, iterations=p.srcnn_iterations if method == "srcnn" else iterations)
    key = config_hash(run_key(cfg, method, p.sr_train_images))
    run_dir = paths.results_dir() / p.name / "models" / f"sr-x{factor}-{method}-{key}"
    model = run_dir / "model.pt"
    if not model.is_file():
        train_sr(cfg, method, [ctx.data(d) for d in p.train_dirs], run_dir, ctx.device, progress=progress,
                 workers=loader_workers(ctx), subset=p.sr_train_images)
    return model


def sr_models(ctx: Context, factor: int, progress: bool = True) -> tuple[dict, dict[str, str]]:
    """{method: checkpoint or network} for ``factor`` and a note per method. SRCNN (×4 only, as
    in the paper): the published model (:mod:`perceptual.srcnn`) wherever it can be had, else
    the RGB SRCNN retrained here. Profiles with a reduced SR schedule also keep the retrained
    SRCNN beside the published one: the like-for-like baseline for their shortened training."""
    from . import srcnn

    models = {m: sr_model(ctx, factor, m, progress) for m in SR_METHODS if m != "srcnn"}
    notes = {m: f"trained here ({ctx.profile.name} profile)" for m in models}
    if factor != 4:
        return models, notes
    path, note = srcnn.published_file()
    if path is not None:
        models["srcnn-published"], notes["srcnn-published"] = srcnn.load_mat(path), note
    if path is None or ctx.profile.sr.iterations < PAPER.sr.iterations:
        models["srcnn"] = sr_model(ctx, factor, "srcnn", progress)
        notes["srcnn"] = "SRCNN 9-1-5 on RGB, retrained here" + (f" (fallback: {note})" if path is None else "")
    return models, notes


def superresolution(ctx: Context, progress: bool = True) -> Path:
    """Train what is missing, then PSNR/SSIM (and LPIPS/DISTS where their weights exist) for every
    set × factor × protocol × method, each network output as is and histogram-matched. Writes
    ``sr_per_image.csv`` and ``sr_summary.csv`` (``protocol`` and ``matched`` columns)."""
    from . import similarity
    from .superres import PROTOCOLS, evaluate, summarise

    p = ctx.profile
    out = ctx.out("superres")
    table, summary = out / "sr_per_image.csv", out / "sr_summary.csv"
    found = {f: sr_models(ctx, f, progress) for f in p.sr_factors}
    models, notes = {f: m for f, (m, _) in found.items()}, {f: n for f, (_, n) in found.items()}
    sets = [(name, ctx.data(folder)) for name, folder in p.sr_sets]
    perceptual, not_computed = similarity.load(device=ctx.device)
    described = {str(f): {k: (str(v) if isinstance(v, Path) else getattr(v, "source", "?")) for k, v in m.items()}
                 for f, m in models.items()}
    key = config_hash((p.sr, p.sr_factors, p.sr_sets, p.sr_max_images, PROTOCOLS, described,
                       [x.name for x in perceptual], {f: [store.read_meta_or_none(x) for x in m.values()
                                                          if isinstance(x, Path)] for f, m in models.items()}))
    if _done(table, key) and summary.is_file():
        return table
    frames = [evaluate(sets, f, models[f], out, ctx.device, max_images=p.sr_max_images, perceptual=perceptual,
                       progress=progress) for f in p.sr_factors]
    per_image = pd.concat(frames, ignore_index=True)
    meta = {**ctx.meta(p.sr, models=described, model_notes={str(f): n for f, n in notes.items()},
                       protocols={name: ("MATLAB-compatible bicubic imresize (a=-0.5, antialiased) by 1/f, 8-bit LR"
                                         if not sigma else f"gaussian σ={sigma}, then the same imresize, 8-bit LR")
                                  for name, sigma in PROTOCOLS.items()},
                       degradation=f"training: gaussian σ={p.sr.blur_sigma}, MATLAB-compatible bicubic (a=-0.5, "
                                   "antialiased), 8-bit LR",
                       train_images=p.sr_train_images or "all",
                       metric="Y (BT.601 studio, rounded to 8 bits as MATLAB rgb2ycbcr on uint8), border=factor, "
                              "8-bit outputs, float64; SSIM 11x11 σ=1.5",
                       perceptual_metrics={**{m.name: "computed" for m in perceptual}, **not_computed}),
            "key": key,
            "summary": (f"sets {', '.join(n for n, _ in p.sr_sets)}, factors {', '.join(f'×{f}' for f in p.sr_factors)};"
                        f" SR networks {p.sr.iterations} iterations, SRCNN {p.srcnn_iterations}, "
                        f"{p.sr.patch}² patches, batch {p.sr.batch_size}, "
                        f"{p.sr_train_images or 'all'} training photos")}
    store.write_table(per_image, table, meta)
    store.write_table(summarise(per_image, not_computed), summary, meta)
    return table


# ---------------------------------------------------------------------------------------------
# what the runs really used (the methods chapter)


def build_preset(ctx: Context):
    """This profile as a :class:`perceptual.config.Preset` with the values its runs use: the Fig. 5
    / Table 1 style's per-style λ (:func:`style_config`) and the profile's L-BFGS iterations."""
    from .config import Preset

    p = ctx.profile
    style = style_config(ctx, p.style_file)
    gatys_cfg = replace(PAPER.gatys, iterations=p.fig5_iterations, loss=style.loss)
    return Preset(f"this build ({p.name})", style, gatys_cfg, p.sr, PAPER.median_filter)


def trained_runs(ctx: Context) -> pd.DataFrame:
    """One row per trained network of this profile (``results/<profile>/models/*/model.pt``): the
    λ, iterations, training photos and precision it was really trained with."""
    rows = []
    for model in sorted((paths.results_dir() / ctx.profile.name / "models").glob("*/model.pt")):
        meta = store.read_meta_or_none(model) or {}
        prov = meta.get("provenance") or {}
        cfg = prov.get("config") or {}
        loss = cfg.get("loss") if isinstance(cfg.get("loss"), dict) else {}
        rows.append({"run": model.parent.name, "kind": meta.get("kind"), "style": meta.get("style"),
                     "method": meta.get("method"), "iterations": cfg.get("iterations"),
                     "λ_c": loss.get("content_weight"), "λ_s": loss.get("style_weight"),
                     "λ_TV": loss.get("tv_weight", cfg.get("tv_weight")),
                     "training photos": prov.get("train_images"),
                     "precision": prov.get("precision") or ("bf16 autocast" if cfg.get("amp") else "fp32")})
    return pd.DataFrame(rows, columns=["run", "kind", "style", "method", "iterations", "λ_c", "λ_s", "λ_TV",
                                       "training photos", "precision"])


# every runner, by the name used in book.CHAPTERS and `perceptual run`
STEPS = {"inversion": inversions, "objective": objective_curves, "qualitative": qualitative, "speed": speed,
         "superres": superresolution}
