"""Fig. 6 / 7: qualitative results — the baseline and the feed-forward network for each style and
size, and the authors' published outputs beside ours where the data root has them."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from perceptual.study import bench
from perceptual.core import images, store
from perceptual.method import gatys
from perceptual.core.config import GatysConfig
from perceptual.runtime.inference import inference_model, run
from perceptual.method.objective import Objective
from perceptual.method.train import config_hash, load_model, style_target
from perceptual.study.chapters.context import Context, _done, runner, square_image, style_config, style_model


def _terms(values: dict) -> dict:
    """Eq. 5 and its weighted terms, as table columns (claim C5 compares them separately)."""
    return {"objective": values["total"], "content_term": values["content"], "style_term": values["style"],
            "tv_term": values["tv"]}


@runner("qualitative", "qualitative.csv")
def qualitative(ctx: Context, progress: bool = True) -> Path:
    """Baseline vs. ours for each style and size; images plus objective values and times."""
    p = ctx.profile
    out = ctx.out("qualitative")
    table = out / "qualitative.csv"
    models = {s: style_model(ctx, s, progress) for s in p.qualitative_styles}
    cfgs = {s: replace(GatysConfig(), iterations=p.fig5_iterations, loss=style_config(ctx, s).loss, seed=p.style.seed)
            for s in p.qualitative_styles}  # the baseline uses exactly the λ its network was trained with
    key = config_hash((list(cfgs.values()), p.qualitative_sizes, p.qualitative_images, p.content_dir,
                       [store.read_meta_or_none(m) for m in models.values()], "terms-v2"))
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


REFERENCE_OUTPUTS = "reference_outputs"  # under the data root: the authors' published outputs (data README)
_NAME_SUFFIXES = ("_eccv", "_cropped", "_crop")  # hoovertowernight_la_muse_eccv, wave_crop → la_muse, wave


def style_key(name: str) -> str:
    """A style's name as both codebases spell it: ``rain-princess-cropped`` → ``rain_princess``."""
    key = name.lower().replace("-", "_")
    for suffix in _NAME_SUFFIXES:
        key = key.removesuffix(suffix)
    return key


def match_references(refs: list[Path], contents: dict[str, Path], styles: tuple[str, ...]) -> list[tuple[Path, Path, str]]:
    """(reference output, content image, style file) for each reference named ``<content>_<style>``
    or ``<content>-<style>`` whose style is one of ``styles``."""
    by_key = {style_key(Path(s).stem): s for s in styles}
    pairs = []
    for ref in refs:
        content = next((c for c in contents if ref.stem.startswith(c) and ref.stem[len(c):len(c) + 1] in ("_", "-")),
                       None)
        key = style_key(ref.stem[len(content) + 1:]) if content else None
        if key in by_key:
            pairs.append((ref, contents[content], by_key[key]))
    return pairs


@runner("qualitative", "reference.csv")
def reference_outputs(ctx: Context, progress: bool = False) -> Path:
    """The authors' outputs (``reference_outputs/`` under the data root, where present) for this
    profile's styles, and ours on the same content image at the same size. A reference file is
    named ``<content>_<style>`` (``chicago_la_muse.jpg``, ``amber-udnie.jpg``); the content image
    is ``content/**/<content>.*``. Writes ``reference.csv`` (one row per pair, possibly none)."""
    p = ctx.profile
    out = ctx.out("qualitative")
    table = out / "reference.csv"
    folder = ctx.root / REFERENCE_OUTPUTS
    refs = sorted(f for f in folder.rglob("*") if f.suffix.lower() in (".jpg", ".png")) if folder.is_dir() else []
    contents = {f.stem: f for f in sorted((ctx.root / "content").rglob("*")) if f.suffix.lower() in (".jpg", ".png")}
    pairs = match_references(refs, contents, p.qualitative_styles)
    models = {s: style_model(ctx, s, progress) for s in {s for _, _, s in pairs}}
    key = config_hash(([(str(r.relative_to(folder)), c.name, s) for r, c, s in pairs],
                       {s: store.read_meta_or_none(m) for s, m in models.items()}))
    if _done(table, key):
        return table
    rows = []
    for ref, content_file, style_file in pairs:
        model, _ = load_model(models[style_file], ctx.device)
        with Image.open(ref) as im:
            w, h = im.size
        content = images.resize(images.read_image(content_file), (h, w), "bicubic").clamp(0, 255)
        ours = out / f"reference_ours_{ref.stem}.png"
        images.write_image(run(inference_model(model, ctx.device), content[None].to(ctx.device)), ours)
        rows.append({"style": Path(style_file).stem, "content": content_file.stem, "width": w, "height": h,
                     "reference": str(ref.relative_to(ctx.root)), "ours": ours.name})
    frame = pd.DataFrame(rows, columns=["style", "content", "width", "height", "reference", "ours"])
    store.write_table(frame, table, {**ctx.meta(None, models={k: str(v) for k, v in models.items()}), "key": key,
                                     "summary": f"{len(rows)} of the authors' outputs match this profile's styles"})
    return table
