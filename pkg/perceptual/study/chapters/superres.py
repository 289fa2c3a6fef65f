"""Fig. 8 / 9: super-resolution — PSNR/SSIM (and LPIPS/DISTS where their weights exist) of the
pixel-loss, feature-loss and SRCNN networks on the benchmark sets."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from perceptual.core import store
from perceptual.core.config import PAPER
from perceptual.method.train import config_hash
from perceptual.study.chapters.context import SR_METHODS, Context, _done, runner, sr_model, trained_iterations
from perceptual.study.profiles import sr_schedule


def sr_models(ctx: Context, factor: int, progress: bool = True) -> tuple[dict, dict[str, str]]:
    """{method: checkpoint or network} for ``factor`` and a note per method. SRCNN (×4 only, as
    in the paper): the published model (:mod:`perceptual.method.srcnn`) wherever it can be had, else
    the RGB SRCNN retrained here. Profiles with a reduced SR schedule also keep the retrained
    SRCNN beside the published one: the like-for-like baseline for their shortened training."""
    from perceptual.method import srcnn

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


@runner("superres", "sr_per_image.csv")
def superresolution(ctx: Context, progress: bool = True) -> Path:
    """Train what is missing, then PSNR/SSIM (and LPIPS/DISTS where their weights exist) for every
    set × factor × protocol × method, each network output as is and histogram-matched. Writes
    ``sr_per_image.csv`` and ``sr_summary.csv`` (``protocol`` and ``matched`` columns; ``iterations``:
    each network's real training iterations, from its ``model.pt``, empty for bicubic and the
    published SRCNN)."""
    from perceptual.evaluation import detail, similarity
    from perceptual.evaluation.sr_benchmark import PROTOCOLS, evaluate, summarise

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
                                                          if isinstance(x, Path)] for f, m in models.items()},
                       detail.VERSION))
    if _done(table, key) and summary.is_file():
        return table
    frames = [evaluate(sets, f, models[f], out, ctx.device, max_images=p.sr_max_images, perceptual=perceptual,
                       progress=progress) for f in p.sr_factors]
    per_image = pd.concat(frames, ignore_index=True)
    trained = {(f, m): trained_iterations(store.read_meta_or_none(x)) for f, ms in models.items()
               for m, x in ms.items() if isinstance(x, Path)}
    per_image["iterations"] = [trained.get((f, m)) for f, m in zip(per_image.factor, per_image.method)]
    real = ", ".join(f"{'SRCNN' if m == 'srcnn' else f'ℓ_{m}'} ×{f} {n}" for (f, m), n in trained.items())
    # the config's iterations are per network, not one number (issue 26): the schedule, and the real counts
    meta = {**ctx.meta(replace(p.sr, iterations=sr_schedule(p)), models=described,
                       model_notes={str(f): n for f, n in notes.items()},
                       network_iterations={str(f): {m: n for (f2, m), n in trained.items() if f2 == f} for f in models},
                       detail_version=detail.VERSION,
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
                        f" networks trained {real} iterations, "
                        f"{p.sr.patch}² patches, batch {p.sr.batch_size}, "
                        f"{p.sr_train_images or 'all'} training photos")}
    store.write_table(per_image, table, meta)
    store.write_table(summarise(per_image, not_computed), summary, meta)
    return table
