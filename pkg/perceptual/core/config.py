"""Configuration: frozen dataclasses whose every default names its source.

``PAPER`` follows the paper's text; ``REFERENCE`` follows what the authors' released code
(jcjohnson/fast-neural-style) did. :func:`deviations` turns the two (and any run's config)
into the table the book prints, so no deviation is prose copied by hand.

Why the style-loss convention defaults to ``"reference"`` in both presets: the paper gives no
λ_c, λ_s; the only values known to work are the authors' released ones, tuned for MSE over
the Gram entries (÷C², see :mod:`perceptual.method.losses`). ``gram_norm="paper"`` is one switch away.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

PAPER_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def sourced(default: Any, source: str) -> Any:
    """A dataclass field whose default carries its source (paper section or reference code)."""
    return field(default=default, metadata={"source": source})


@dataclass(frozen=True)
class LossConfig:
    network: str = sourced("vgg16-caffe", "paper §3.2 (VGG-16, ImageNet); Caffe weights as the authors used")
    content_layers: tuple[str, ...] = sourced(("relu2_2",), "paper §4.1")
    style_layers: tuple[str, ...] = sourced(PAPER_STYLE_LAYERS, "paper §4.1")
    style_layer_weights: tuple[float, ...] | None = sourced(None, "paper §3.2: plain sum over layers")
    content_weight: float = sourced(1.0, "reference code default (paper gives none)")
    style_weight: float = sourced(5.0, "reference code default (paper gives none)")
    tv_weight: float = sourced(1e-6, "paper §4.1 range 1e-6…1e-4; reference default 1e-6")
    gram_norm: str = sourced("reference", "reference code (÷C²); paper Eq. 4 is 'paper' — see module doc")
    pool: str = sourced("max", "VGG (Simonyan & Zisserman)")

    def layer_weights(self) -> dict[str, float]:
        w = self.style_layer_weights or (1.0,) * len(self.style_layers)
        if len(w) != len(self.style_layers):
            raise ValueError(f"{len(w)} style layer weights for {len(self.style_layers)} style layers")
        return dict(zip(self.style_layers, w))

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))


@dataclass(frozen=True)
class StyleNetConfig:
    norm: str = sourced("batch", "paper §3.1 (spatial batch norm)")
    upsample: str = sourced("deconv", "paper §3.1 (stride-½ convolutions)")
    padding: str = sourced("reflect", "supplementary, later version (40 px reflection pad)")
    width: int = sourced(32, "supplementary Table")
    output: str = sourced("tanh255", "paper §3.1: scaled tanh onto [0, 255] ('caffe150': authors' code)")


@dataclass(frozen=True)
class StyleTrainConfig:
    style: str = sourced("la_muse", "paper Fig. 5 (The Muse)")
    image_size: int = sourced(256, "paper §4.1")
    resize: str = sourced("warp", "paper §4.1 'resize each image to 256×256'")
    style_size: int = sourced(512, "reference models: longer side 256–512 per style")
    batch_size: int = sourced(4, "paper §4.1")
    iterations: int = sourced(40_000, "paper §4.1")
    lr: float = sourced(1e-3, "paper §4.1 (Adam)")
    loss: LossConfig = sourced(LossConfig(), "see LossConfig")
    net: StyleNetConfig = sourced(StyleNetConfig(), "see StyleNetConfig")
    seed: int = sourced(0, "ours")
    checkpoint_every: int = sourced(1000, "ours")
    val_every: int = sourced(500, "ours")
    val_images: int = sourced(4, "ours (held out from the training folder)")
    precision: str = sourced("auto", "ours: bf16 autocast where the device runs it fast, else fp32 (perceptual.runtime.precision)")


@dataclass(frozen=True)
class GatysConfig:
    iterations: int = sourced(500, "paper §4.1 ('within 500 iterations')")
    clip: bool = sourced(True, "paper §4.1 (projected L-BFGS, clip to [0, 255])")
    init: str = sourced("noise", "paper §4.1 (white noise): 'noise' is the authors' start (noise_amplitude); "
                                 "'uniform' i.i.d. uniform on [0, 255] (this build's start before issue 26); "
                                 "'content' the content image")
    noise_amplitude: float | None = sourced(
        1.0, "the authors' slow_neural_style.lua: torch.randn in Caffe space, i.e. the mean pixel ± 1 grey level "
             "(σ in grey levels, REFERENCE.md §6); the paper states no amplitude")
    history: int = sourced(100, "L-BFGS memory; neural-style default")
    loss: LossConfig = sourced(LossConfig(), "the same objective as training, Eq. 5")
    seed: int = sourced(0, "ours")


@dataclass(frozen=True)
class SRConfig:
    factor: int = sourced(4, "paper §4.2 (×4 and ×8)")
    loss: str = sourced("feat", "paper §4.2 ('feat' = ℓ_feat at relu2_2, or 'pixel')")
    feature_layer: str = sourced("relu2_2", "paper §4.2")
    network: str = sourced("vgg16-caffe", "paper §3.2")
    tv_weight: float = sourced(0.0, "paper §4.2 names no TV for super-resolution; the authors' code adds 1e-6 to every "
                                    "transformation network, SR included (models.lua, REFERENCE.md §6)")
    patch: int = sourced(288, "paper §4.2")
    upsample: str = sourced("deconv", "paper §3.1 (stride-½ convolutions; 'nearest': nearest ×2, then a 3×3 convolution, "
                                      "which cannot make a checkerboard)")
    blur_sigma: float = sourced(1.0, "paper §4.2")
    batch_size: int = sourced(4, "paper §4.2")
    iterations: int = sourced(200_000, "paper §4.2")
    lr: float = sourced(1e-3, "paper §4.2 (Adam)")
    histogram_match: bool = sourced(True, "paper §4.2 post-processing")
    seed: int = sourced(0, "ours")
    checkpoint_every: int = sourced(1000, "ours")
    val_every: int = sourced(500, "ours")
    val_images: int = sourced(4, "ours")
    precision: str = sourced("auto", "ours: bf16 autocast where the device runs it fast, else fp32 (perceptual.runtime.precision)")


# ---------------------------------------------------------------------------------------------
# per-style settings from the authors' released models (REFERENCE.md §3); a table, not an if-chain

STYLE_COLUMNS = ("name", "file", "norm", "content_weight", "style_weight", "tv_weight", "style_size", "iterations")
STYLE_TABLE: tuple[tuple[Any, ...], ...] = (
    ("candy", "styles/fast-neural-style/candy.jpg", "instance", 1.0, 10.0, 1e-4, 384, 40_000),
    ("composition_vii", "styles/fast-neural-style/composition_vii.jpg", "batch", 1.0, 5.0, 1e-6, 512, 60_000),
    ("feathers", "styles/fast-neural-style/feathers.jpg", "instance", 1.0, 10.0, 1e-5, 180, 60_000),
    ("la_muse", "styles/fast-neural-style/la_muse.jpg", "batch", 1.0, 5.0, 1e-5, 512, 40_000),
    ("la_muse_in", "styles/fast-neural-style/la_muse.jpg", "instance", 0.5, 10.0, 1e-4, 512, 40_000),
    ("mosaic", "styles/fast-neural-style/mosaic.jpg", "instance", 1.0, 10.0, 1e-5, 512, 60_000),
    ("starry_night", "styles/fast-neural-style/starry_night.jpg", "batch", 1.0, 3.0, 1e-5, 512, 40_000),
    ("the_scream", "styles/fast-neural-style/the_scream.jpg", "instance", 1.0, 20.0, 1e-5, 384, 60_000),
    ("the_wave", "styles/fast-neural-style/wave.jpg", "batch", 1.0, 5.0, 1e-4, 512, 40_000),
    ("udnie", "styles/fast-neural-style/udnie.jpg", "instance", 0.5, 10.0, 1e-6, 256, 40_000),
)
STYLES: dict[str, dict[str, Any]] = {row[0]: dict(zip(STYLE_COLUMNS, row)) for row in STYLE_TABLE}


def style_preset(name: str, base: "StyleTrainConfig | None" = None) -> StyleTrainConfig:
    """A training config with the authors' per-style settings applied to ``base``."""
    if name not in STYLES:
        raise KeyError(f"unknown style {name!r}; known: {', '.join(STYLES)}")
    s, base = STYLES[name], base or PAPER.style
    loss = replace(base.loss, content_weight=s["content_weight"], style_weight=s["style_weight"],
                   tv_weight=s["tv_weight"])
    return replace(base, style=name, style_size=s["style_size"], iterations=s["iterations"],
                   loss=loss, net=replace(base.net, norm=s["norm"]))


# ---------------------------------------------------------------------------------------------
# presets: what the paper says vs. what the authors' code did


@dataclass(frozen=True)
class Preset:
    name: str
    style: StyleTrainConfig
    gatys: GatysConfig
    sr: SRConfig
    median_filter: bool = sourced(False, "paper: none; the authors' test script applies a 3×3 median filter")


PAPER = Preset("paper", StyleTrainConfig(), GatysConfig(), SRConfig())
_REF_LOSS = replace(LossConfig(), content_layers=("relu3_3",))
REFERENCE = Preset(
    "reference",
    style=replace(StyleTrainConfig(), resize="topleft16-warp", loss=_REF_LOSS,
                  net=replace(StyleNetConfig(), norm="instance", output="caffe150")),
    gatys=replace(GatysConfig(), clip=False, loss=_REF_LOSS),
    sr=replace(SRConfig(), tv_weight=1e-6),  # fast-neural-style's nn.TotalVariation(1e-6) on every network
    median_filter=True,
)
PRESETS = {p.name: p for p in (PAPER, REFERENCE)}


def in_float32(preset: Preset) -> Preset:
    """``preset`` trained in float32: the paper does not say, its released style code ran Torch7's
    ``torch.CudaTensor`` (float32; fast-neural-style's ``utils.setup_gpu``), and Torch7 had no mixed
    precision in 2016 — the SR networks, whose code was not released, are taken to be the same. The
    deviation table's paper and authors' columns, so that a run's resolved precision shows as a
    difference."""
    return replace(preset, style=replace(preset.style, precision="fp32"), sr=replace(preset.sr, precision="fp32"))


def as_printed(preset: Preset = PAPER) -> Preset:
    """``preset`` with Eq. 4 as the paper prints it (``gram_norm="paper"``: no ÷C²), in float32,
    and the baseline's "white noise" without an amplitude (the paper states none) — the paper column
    of the deviation table, so the convention and the start every run uses show as differences."""
    loss = replace(preset.style.loss, gram_norm="paper")
    gatys = replace(preset.gatys, loss=loss, noise_amplitude=None)
    return in_float32(replace(preset, style=replace(preset.style, loss=loss), gatys=gatys))


# ---------------------------------------------------------------------------------------------
# VGG-19 standing in for VGG-16 (issue 26): which layers the losses read

# VGG-16's block-final layers and the block-final layers of VGG-19 (four convolutions in blocks 3–5)
BLOCK_FINAL_VGG19 = {"relu3_3": "relu3_4", "relu4_3": "relu4_4", "relu5_3": "relu5_4"}
VGG19_LAYERS = "same names"
VGG19_LAYERS_REASON = (
    "the paper names its layers (§4.1: relu2_2; relu1_2, relu2_2, relu3_3, relu4_3), so VGG-19 is read at the same "
    "names: relu3_3 is the third convolution of block 3 in both networks (the same depth and receptive field); "
    "relu4_3 has one convolution more (conv3_4). The block-final relu3_4 / relu4_4 would add conv3_4 and conv4_4 "
    "(two extra layers, a larger receptive field, more cost) and invalidate every published network and table; "
    "REFERENCE.md §6")


def loss_layers(loss: LossConfig) -> str:
    """Which layers of which network the loss reads, as the deviation table shows it: for VGG-19
    the mapping of the paper's VGG-16 layer names (:data:`VGG19_LAYERS`, and why)."""
    used = ", ".join(loss.layers)
    if "vgg19" not in loss.network:
        return f"VGG-16 {used}"
    moved = ", ".join(f"{a} (block-final: {b})" for a, b in BLOCK_FINAL_VGG19.items() if a in loss.layers)
    return f"VGG-19 {used}, by the same names: {moved}" if moved else f"VGG-19 {used}"


# rows the deviation table derives from a preset rather than reads from a field: (name, function, source)
DERIVED = (("style.loss layers in the loss network", lambda p: loss_layers(p.style.loss), VGG19_LAYERS_REASON),)


def flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """(dotted name, value, source) for every leaf field of a config dataclass."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from flatten(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, f.metadata.get("source", "")


def deviations(*configs: Any, names: tuple[str, ...] | None = None, only_differences: bool = True):
    """A DataFrame with one row per field and one column per config (plus the source)."""
    import pandas as pd

    names = names or tuple(f"config{i}" for i in range(len(configs)))
    flat = [dict((k, v) for k, v, _ in flatten(c)) for c in configs]
    sources = {k: s for k, _, s in flatten(configs[0])}
    if all(isinstance(c, Preset) for c in configs):  # rows derived from each preset (the VGG-19 layer mapping)
        for key, derive, source in DERIVED:
            for f, c in zip(flat, configs):
                f[key] = derive(c)
            sources[key] = source
    rows = []
    for key in flat[0]:
        if key == "name":
            continue
        values = [f.get(key) for f in flat]
        if only_differences and all(v == values[0] for v in values):
            continue
        rows.append({"setting": key, **{n: _fmt(v) for n, v in zip(names, values)}, "source": sources[key]})
    return pd.DataFrame(rows, columns=["setting", *names, "source"])


def _fmt(v: Any) -> str:
    if v is None:
        return "—"  # not stated (e.g. the paper's noise amplitude)
    return ", ".join(map(str, v)) if isinstance(v, tuple) else str(v)
