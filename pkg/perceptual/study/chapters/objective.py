"""Fig. 5: objective values — Eq. 5 per L-BFGS iteration of the baseline, beside the values of the
feed-forward network's output and of the content image itself; and its calibration by the
authors' released network (issue 26): L-BFGS against the authors' own outputs and ours on the
same images at the same sizes, under this build's objective and start."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from perceptual.core import images, store
from perceptual.method import gatys
from perceptual.core.config import GatysConfig
from perceptual.runtime.inference import inference_model, run
from perceptual.method.objective import Objective
from perceptual.method.train import config_hash, load_model, style_target
from perceptual.study.chapters.context import (Context, _done, runner, square_image, style_config, style_model,
                                               trained_iterations)
from perceptual.study.chapters.qualitative import REFERENCE_OUTPUTS, match_references

AUTHORS_START, UNIFORM_START = "noise", "uniform"  # GatysConfig.init: the authors' start, the one before issue 26


def starts(ctx: Context) -> tuple[str, ...]:
    """The L-BFGS starts this profile measures: the authors' (what the verdicts use) and, where the
    profile asks (``compare_uniform_start``), uniform noise on [0, 255] beside it."""
    return (AUTHORS_START,) + ((UNIFORM_START,) if ctx.profile.compare_uniform_start else ())


def _lbfgs_config(ctx: Context, loss, start: str) -> GatysConfig:
    return replace(GatysConfig(), iterations=ctx.profile.fig5_iterations, loss=loss, seed=ctx.profile.style.seed,
                   init=start)


@runner("objective", "objective.csv")
def objective_curves(ctx: Context, progress: bool = True) -> Path:
    """Eq. 5 per L-BFGS iteration for the baseline, and for the network's output and the content
    image itself, on ``fig5_images`` images at each ``fig5_sizes`` — L-BFGS from the authors' start
    at every size and, where the profile asks, from uniform noise at the training size (the
    ``start`` column); then the calibration (:func:`calibration_curves`)."""
    table = _fig5(ctx, progress)
    calibration_curves(ctx, progress)
    return table


def _fig5(ctx: Context, progress: bool) -> Path:
    p = ctx.profile
    model_path = style_model(ctx, p.style_file, progress)
    loss = style_config(ctx, p.style_file).loss  # the same Eq. 5 the network was trained on
    cfgs = {s: _lbfgs_config(ctx, loss, s) for s in starts(ctx)}
    train = p.style.image_size
    extra_at = train if train in p.fig5_sizes else p.fig5_sizes[0]  # where the other starts run too
    out = ctx.out("objective")
    table = out / "objective.csv"
    model_meta = store.read_meta_or_none(model_path)
    key = config_hash((list(cfgs.values()), p.fig5_sizes, p.fig5_images, p.content_dir, str(model_path), model_meta))
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
                    rows.append({"size": size, "image": path.name, "method": method, "start": None, "iteration": None,
                                 "objective": float(objective(y, targets)["total"])})
            for start, cfg in cfgs.items():
                if start != AUTHORS_START and size != extra_at:
                    continue
                hist = gatys.optimise(objective, (size, size), cfg, content, progress,
                                      desc=f"{size}² {path.name} ({start})").history
                rows += [{"size": size, "image": path.name, "method": "gatys", "start": start,
                          "iteration": h["iteration"], "objective": h["total"]} for h in hist]
    iterations = trained_iterations(model_meta)
    summary = (f"sizes {', '.join(f'{s}²' for s in p.fig5_sizes)}, {p.fig5_images} images from {p.content_dir}, "
               f"{p.fig5_iterations} L-BFGS iterations from "
               + " and ".join(f"{s}" + ("" if s == AUTHORS_START else f" (at {extra_at}² only)") for s in cfgs)
               + f"; network trained {iterations} iterations at {train}², batch {p.style.batch_size}, "
               f"λ_c/λ_s/λ_TV = {loss.content_weight}/{loss.style_weight}/{loss.tv_weight}")
    meta = {**ctx.meta(cfgs[AUTHORS_START], model=str(model_path), starts={s: c for s, c in cfgs.items()}),
            "key": key, "summary": summary, "train_size": train, "network_iterations": iterations}
    store.write_table(pd.DataFrame(rows), table, meta)
    return table


def calibration_pairs(ctx: Context) -> list[tuple[Path, Path]]:
    """(the authors' output, its content image) for the profile's Fig. 5 style, from the data root's
    ``reference_outputs/`` (:func:`perceptual.study.chapters.qualitative.match_references`)."""
    folder = ctx.root / REFERENCE_OUTPUTS
    refs = sorted(f for f in folder.rglob("*") if f.suffix.lower() in (".jpg", ".png")) if folder.is_dir() else []
    contents = {f.stem: f for f in sorted((ctx.root / "content").rglob("*")) if f.suffix.lower() in (".jpg", ".png")}
    return [(ref, content) for ref, content, _ in match_references(refs, contents, (ctx.profile.style_file,))]


@runner("objective", "calibration.csv")
def calibration_curves(ctx: Context, progress: bool = True) -> Path:
    """Fig. 5's calibration: for each of the authors' released outputs of the Fig. 5 style and each
    ``calibration_sizes`` (longer side, px), Eq. 5 of their output, of ours and of the content image
    on the same content image at the same size, and L-BFGS per iteration from each start — under
    this build's objective (loss network, λ, style size). Writes ``calibration.csv`` (no rows where
    the data root has no such outputs)."""
    p = ctx.profile
    out = ctx.out("objective")
    table = out / "calibration.csv"
    pairs = calibration_pairs(ctx) if p.calibration_sizes else []
    model_path = style_model(ctx, p.style_file, progress) if pairs else None
    loss = style_config(ctx, p.style_file).loss
    cfgs = {s: _lbfgs_config(ctx, loss, s) for s in starts(ctx)}
    key = config_hash((list(cfgs.values()), p.calibration_sizes, p.style.style_size,
                       [(str(r.relative_to(ctx.root)), c.name) for r, c in pairs], str(model_path),
                       store.read_meta_or_none(model_path) if model_path else None))
    if _done(table, key):
        return table
    rows = []
    if pairs:
        net = ctx.net(loss.network)
        model, _ = load_model(model_path, ctx.device)
        fast = inference_model(model, ctx.device)
        style = style_target(ctx.data(p.style_file), p.style.style_size).to(ctx.device)
        objective = Objective(net, loss, style)
        for size in p.calibration_sizes:
            for ref, content_file in pairs:
                image = images.read_image(content_file)
                h, w = image.shape[-2:]
                shape = (max(1, round(h * size / max(h, w))), max(1, round(w * size / max(h, w))))
                content = images.resize(image, shape, "bicubic").clamp(0, 255)[None].to(ctx.device)
                authors = images.resize(images.read_image(ref), shape, "bicubic").clamp(0, 255)[None].to(ctx.device)
                targets = objective.content_targets(content)
                base = {"size": size, "image": content_file.stem, "height": shape[0], "width": shape[1],
                        "reference": str(ref.relative_to(ctx.root))}
                with torch.no_grad():
                    for method, y in (("authors", authors), ("ours", run(fast, content)), ("content", content)):
                        rows.append({**base, "method": method, "start": None, "iteration": None,
                                     "objective": float(objective(y, targets)["total"])})
                for start, cfg in cfgs.items():
                    hist = gatys.optimise(objective, shape, cfg, content, progress,
                                          desc=f"calibration {content_file.stem} {size} px ({start})").history
                    rows += [{**base, "method": "gatys", "start": start, "iteration": h_["iteration"],
                              "objective": h_["total"]} for h_ in hist]
    frame = pd.DataFrame(rows, columns=["size", "image", "height", "width", "reference", "method", "start",
                                        "iteration", "objective"])
    summary = (f"{len(pairs)} of the authors' released outputs of {Path(p.style_file).stem} (reference_outputs/) and "
               f"ours on the same images at {', '.join(f'{s} px' for s in p.calibration_sizes) or 'no size'} (longer "
               f"side); {p.fig5_iterations} L-BFGS iterations from {' and '.join(cfgs)}")
    store.write_table(frame, table, {**ctx.meta(cfgs[AUTHORS_START], model=str(model_path) if model_path else None,
                                                starts={s: c for s, c in cfgs.items()}),
                                     "key": key, "summary": summary, "train_size": p.style.image_size})
    return table
