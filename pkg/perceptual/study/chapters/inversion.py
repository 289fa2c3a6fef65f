"""Fig. 3 and Fig. 4: inversions — an image reconstructed from one layer's features, and one
from one layer's style (Gram matrices), each by L-BFGS with a strong-Wolfe line search until it
stops moving (:data:`CONVERGENCE`; the profile's ``inversion_iterations`` is the cap), restarting
the L-BFGS memory where an iteration does not move the image (``gatys.optimise(restart=True)``:
without it the style reconstructions sat still and "settled" after 100 iterations). Without the
line search, 600 iterations at 128² settled none of Fig. 3's layers and one style reconstruction
blew up (relu3_3: objective 1.6e6 → 1.0e8); with it, the objective only falls. Fig. 3 starts where the
authors' scripts do (the mean pixel ± 1 grey level): from uniform noise, 1,000 iterations at 128²
leave the relu2_2 reconstruction at 19.7 dB, against 30.2 dB after 400 from the authors' start.
Fig. 4 starts from uniform noise on [0, 255] (a Gram-only objective has near-zero gradients at a
near-grey start); that start is saved (``style_start.png``) as the control for its measures: what
is left of it is noise, not structure (:func:`perceptual.study.claims.inversion_measures`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from perceptual.core import images, store
from perceptual.method import gatys
from perceptual.method.train import config_hash, style_target
from perceptual.study.chapters.context import Context, _done, runner, square_image

FEATURE_LAYERS = ("relu2_2", "relu3_3", "relu4_3", "relu5_1", "relu5_3")  # paper Fig. 3
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # paper Fig. 4
CONVERGENCE = gatys.Convergence(window=50, tol=0.01, pixels=0.5)  # ours: see gatys.Convergence
STARTS = {"fig3": "noise", "fig4": "uniform"}  # see the module's docstring


@runner("inversion", "inversion.csv")
def inversions(ctx: Context, progress: bool = True) -> Path:
    p = ctx.profile
    out = ctx.out("inversion")
    table = out / "inversion.csv"
    cfg = {fig: gatys.feature_inversion_config(p.inversion_iterations, init=start) for fig, start in STARTS.items()}
    key = config_hash((cfg, CONVERGENCE, "strong_wolfe", "restart", p.inversion_size, p.loss_network, p.content_dir,
                       p.style_file))
    if _done(table, key):
        return table
    net = ctx.net()
    content = square_image(ctx.content_files(1)[0], p.inversion_size).to(ctx.device)
    style = style_target(ctx.data(p.style_file), p.inversion_size).to(ctx.device)
    shape = (p.inversion_size, p.inversion_size)
    images.write_image(content, out / "feature_target.png")
    images.write_image(style, out / "style_target.png")
    images.write_image(gatys.initial_image(shape, STARTS["fig4"], cfg["fig4"].seed, torch.device("cpu")),
                       out / "style_start.png")  # the control: what a reconstruction that never moved looks like
    rows = []
    for layer in FEATURE_LAYERS:
        r = gatys.invert_features(net, content, layer, cfg["fig3"], progress, until=CONVERGENCE, line_search=True,
                                  restart=True)
        images.write_image(r.image, out / f"feature_{layer}.png")
        rows += [{"figure": "fig3", "layer": layer, **h, "converged": r.converged} for h in r.history]
    for layer in STYLE_LAYERS:
        r = gatys.invert_style(net, style, (layer,), shape, cfg["fig4"], progress, until=CONVERGENCE, line_search=True,
                               restart=True)
        images.write_image(r.image, out / f"style_{layer}.png")
        rows += [{"figure": "fig4", "layer": layer, **h, "converged": r.converged} for h in r.history]
    summary = (f"{p.inversion_size}² images, L-BFGS with a line search (its memory restarted where an iteration "
               f"does not move the image) until, over {CONVERGENCE.window} iterations, the objective improves "
               f"< {CONVERGENCE.tol:.0%} or the image changes < {CONVERGENCE.pixels:g} grey levels (at most "
               f"{p.inversion_iterations}); Fig. 3 from the authors' start "
               f"(the mean pixel ± 1 grey level), Fig. 4 from uniform noise on [0, 255]; "
               f"content {ctx.content_files(1)[0].name}, style {p.style_file}")
    store.write_table(pd.DataFrame(rows), table, {**ctx.meta(cfg["fig3"], size=p.inversion_size, fig4=cfg["fig4"],
                                                             convergence=CONVERGENCE), "key": key, "summary": summary})
    return table
