"""Fig. 3 and Fig. 4: inversions — an image reconstructed from one layer's features, and one
from one layer's style (Gram matrices), each by L-BFGS from uniform noise on [0, 255]
(:func:`perceptual.method.gatys.feature_inversion_config`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from perceptual.core import images, store
from perceptual.method import gatys
from perceptual.method.train import config_hash, style_target
from perceptual.study.chapters.context import Context, _done, runner, square_image

FEATURE_LAYERS = ("relu2_2", "relu3_3", "relu4_3", "relu5_1", "relu5_3")  # paper Fig. 3
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # paper Fig. 4


@runner("inversion", "inversion.csv")
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
    summary = (f"{p.inversion_size}² images, {p.inversion_iterations} L-BFGS iterations from uniform noise on "
               "[0, 255], "
               f"content {ctx.content_files(1)[0].name}, style {p.style_file}")
    store.write_table(pd.DataFrame(rows), table, {**ctx.meta(cfg, size=p.inversion_size), "key": key,
                                                 "summary": summary})
    return table
