"""Runners that compute each style-transfer figure and table and write them under
``results/<profile>/<chapter>/`` (CSV + ``.meta.json`` + images). Notebooks call these, then plot
what they wrote. Every runner skips work whose outputs exist for the same config hash.

Data come from the profile: ``demo`` materialises the embedded data set; the others read the
data root and stop with :class:`perceptual.core.data.DataMissing` when a folder is absent.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from perceptual.study import bench
from perceptual.core import data, demo, images, paths, store
from perceptual.method import gatys
from perceptual.runtime import precision
from perceptual.core.config import PAPER, STYLES, GatysConfig
from perceptual.runtime.inference import inference_model, run
from perceptual.method.objective import Objective
from perceptual.study.profiles import Profile
from perceptual.method.train import config_hash, load_model, pick_device, style_target, train_style
from perceptual.method.vgg import VGGFeatures, load_vgg

log = logging.getLogger("perceptual.study.experiments")

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
# Fig. 3 and Fig. 4: inversions


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
    summary = (f"{p.inversion_size}² images, {p.inversion_iterations} L-BFGS iterations from white noise, "
               f"content {ctx.content_files(1)[0].name}, style {p.style_file}")
    store.write_table(pd.DataFrame(rows), table, {**ctx.meta(cfg, size=p.inversion_size), "key": key,
                                                 "summary": summary})
    return table


# ---------------------------------------------------------------------------------------------
# Fig. 5: objective values


@runner("objective", "objective.csv")
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


# ---------------------------------------------------------------------------------------------
# Table 1: speed


@runner("speed", "speed.csv")
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
# the speed benchmark (``perceptual bench``): training and inference fast paths


@dataclass(frozen=True)
class BenchSizes:
    """The benchmark's sizes and counts (issue 12); ``TINY`` only checks that the table is written."""

    style_size: int = 256  # paper §4.1
    style_batch: int = 4  # paper §4.1
    sr_patch: int = 288  # paper §4.2 (×4)
    sr_batch: int = 4  # paper §4.2
    iterations: int = 200  # the loss-agreement run; its iterations after warm-up are also timed
    warmup: int = 10
    tail: int = 20  # final mean loss over the last 20 iterations
    inference_sizes: tuple[int, ...] = (256, 512, 1024)  # Table 1's sizes
    repeats: int = 5


BENCH = BenchSizes()
TINY = BenchSizes(style_size=48, style_batch=2, sr_patch=48, sr_batch=2, iterations=4, warmup=1, tail=2,
                  inference_sizes=(48, 64), repeats=1)


def _batches(dataset, n: int, batch: int, seed: int) -> list[torch.Tensor]:
    """The first ``n`` training batches in the training loop's order, kept as uint8."""
    from perceptual.method.train import IterationSampler

    sampler = IterationSampler(len(dataset), batch, seed, 0, n)
    return [torch.stack([dataset[item] for item in sampler.batch(i)]).to(torch.uint8) for i in range(n)]


def _bench_style_net(ctx: Context, content: list[torch.Tensor]) -> tuple[torch.nn.Module, str]:
    """The profile's trained style network when it exists, else a seeded one whose batch-norm
    statistics come from the content images (timing does not depend on the weights)."""
    path = style_model_path(ctx, ctx.profile.style_file)
    if path.is_file():
        shown = path.relative_to(paths.results_dir()) if path.is_relative_to(paths.results_dir()) else path
        return load_model(path, ctx.device)[0], shown.as_posix()  # <profile>/models/…: no machine's paths
    model = _seeded_style_net(ctx.profile.style, 0).to(ctx.device).train()
    with torch.no_grad():
        for _ in range(3):
            for image in content:
                model(image.to(ctx.device))
    return model.eval(), "untrained (seed 0, batch-norm statistics from the content images)"


def _seeded_style_net(cfg, seed: int) -> torch.nn.Module:
    from dataclasses import asdict

    from perceptual.method.transformer import StyleNet

    torch.manual_seed(seed)
    return StyleNet(**asdict(cfg.net))


def _train_files(ctx: Context) -> list[Path]:
    from perceptual.method.train import split_files

    return split_files([ctx.data(d) for d in ctx.profile.train_dirs], 0)[0]


def _style_training(ctx: Context, size: int, sizes: BenchSizes, train_files: list[Path]):
    """The bench's style training case at ``size``²: (config, loss network, style image, a function
    making the seeded initial network, the first ``sizes.iterations`` batches of the training order)."""
    from perceptual.method.train import SquareImages

    p = ctx.profile
    cfg = style_config(ctx, p.style_file)
    style = style_target(ctx.data(p.style_file), cfg.style_size).to(ctx.device)  # (1, 3, h, w)
    batches = _batches(SquareImages(train_files, size, cfg.resize), sizes.iterations, sizes.style_batch, cfg.seed)
    return cfg, ctx.net(cfg.loss.network), style, lambda: _seeded_style_net(cfg, cfg.seed), batches


def _machine(device: torch.device) -> dict:
    return {"device": str(device), "hardware": store.machine_label(store.hardware(device))}


SENSITIVITY_SIZE = 128  # px: the style case at a quarter of the bench's pixels (seven runs in ≈ 20 min on 2 cores)


def speed_sensitivity(ctx: Context, tiny: bool = False, progress: bool = True, size: int | None = None,
                      iterations: int | None = None) -> Path:
    """``results/<profile>/speed/sensitivity.csv``: the bench's style training case (200 iterations,
    batch 4, the same seed and batches) at ``SENSITIVITY_SIZE``² under perturbations of its
    arithmetic (:data:`perceptual.study.bench.SENSITIVITY`): how far the final loss moves, the scale
    against which the loss agreement's 3 % reads. ``size`` and ``iterations`` override the image
    size and the run's length (each row's ``curve`` has the mean loss of every ``tail`` iterations,
    so one long run shows how the spread evolves). On CUDA, cuDNN runs deterministically, so that each run
    differs from the baseline only by its perturbation. The meta records how far apart the two sets
    of style Gram matrices are. Always measures."""
    sizes = TINY if tiny else BENCH
    sizes = replace(sizes, iterations=iterations) if iterations else sizes
    size = size or (sizes.style_size if tiny else SENSITIVITY_SIZE)
    cudnn = precision.set_cudnn(ctx.device, deterministic=ctx.device.type == "cuda")
    try:
        return _sensitivity(ctx, sizes, size, tiny, progress)
    finally:
        precision.restore_cudnn(cudnn)


def _sensitivity(ctx: Context, sizes: BenchSizes, size: int, tiny: bool, progress: bool) -> Path:
    cfg, net, style, make_model, batches = _style_training(ctx, size, sizes, _train_files(ctx))
    objectives = {}
    for layout, fmt in (("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)):
        net.to(memory_format=fmt)  # the same loss network, its weights in another layout
        objectives[layout] = Objective(net, cfg.loss, style)
    net.to(memory_format=torch.contiguous_format)
    a, b = objectives["NCHW"].style_grams, objectives["channels-last"].style_grams
    apart = max(float((a[j] - b[j]).abs().max() / a[j].abs().max()) for j in a)
    log.info("bench: loss sensitivity, style training %d², batch %d, %d iterations", size, sizes.style_batch,
             sizes.iterations)
    case = f"style-{size}-b{sizes.style_batch}"
    rows = bench.sensitivity_rows(case, make_model, {k: o.train_step for k, o in objectives.items()}, batches, net,
                                  ctx.device, cfg.lr, sizes.tail, progress)
    table = ctx.out("speed") / "sensitivity.csv"
    store.write_table(pd.DataFrame([{**r, **_machine(ctx.device)} for r in rows]), table,
                      {**ctx.meta(sizes, style_config=cfg, size=size, tiny=tiny),
                       "style_grams_apart": apart,
                       "cudnn_deterministic": torch.backends.cudnn.deterministic,
                       "summary": f"style training {size}², batch {sizes.style_batch}, {sizes.iterations} iterations "
                                  f"from one seed; final loss = mean of the last {sizes.tail}; the two sets of style "
                                  f"Gram matrices differ by at most {apart:.1e} of their largest entry"
                                  + ("; cuDNN deterministic" if torch.backends.cudnn.deterministic else "")})
    return table


def speed_bench(ctx: Context, tiny: bool = False, compile: bool = False, progress: bool = True) -> Path:
    """``results/<profile>/speed/bench.csv``: training it/s and loss agreement (style 256² batch 4,
    SR ×4 288² patches, the profile's loss network), inference seconds per image and PSNR at 256²,
    512², 1024²; eager fp32 vs the fast paths (:mod:`perceptual.study.bench`). Always measures."""
    from perceptual.runtime.precision import int8_supported, resolve
    from perceptual.method.superres import Patches, sr_loss
    from perceptual.method.transformer import SRNet

    p, sizes, device = ctx.profile, TINY if tiny else BENCH, ctx.device
    prec = resolve("auto", device)
    precision.set_cudnn(device)  # fixed sizes: autotuned on CUDA, as train.fit does
    train_files = _train_files(ctx)
    cfg, net, style, style_net, batches = _style_training(ctx, sizes.style_size, sizes, train_files)
    style_step = Objective(net, cfg.loss, style).train_step

    def sr_net():
        torch.manual_seed(sr_cfg.seed)
        return SRNet(4)

    rows = []
    log.info("bench: style training %d², batch %d", sizes.style_size, sizes.style_batch)
    rows += bench.training_rows(f"style-{sizes.style_size}-b{sizes.style_batch}", style_net, style_step, batches, net,
                                device, prec, cfg.lr, sizes.warmup, sizes.tail, compile, progress)
    sr_cfg = replace(p.sr, factor=4, patch=sizes.sr_patch, batch_size=sizes.sr_batch, loss="feat")
    log.info("bench: SR ×4 training %d² patches, batch %d", sizes.sr_patch, sizes.sr_batch)
    batches = _batches(Patches(train_files, sr_cfg.patch, 4, sr_cfg.blur_sigma), sizes.iterations, sr_cfg.batch_size,
                       sr_cfg.seed)
    sr_lossnet = net if sr_cfg.network == cfg.loss.network else ctx.net(sr_cfg.network)
    rows += bench.training_rows(f"sr-x4-{sizes.sr_patch}-b{sizes.sr_batch}", sr_net, sr_loss(sr_cfg, "feat", sr_lossnet),
                                batches, sr_lossnet, device, prec, sr_cfg.lr, sizes.warmup, sizes.tail, compile,
                                progress)
    del batches

    content = [square_image(f, max(sizes.inference_sizes)) for f in ctx.content_files(1)]
    model, source = _bench_style_net(ctx, content)
    inputs = {s: images.resize(content[0][0], (s, s))[None] for s in sizes.inference_sizes}
    low = [prec] if prec != "fp32" else []
    if device.type == "cuda" and "fp16" not in low:
        low.append("fp16")
    if int8_supported(device):
        low.append("int8")
    onnx_file = None
    from perceptual.tools.export import OnnxUnavailable, export_module

    try:
        onnx_file = export_module(model, ctx.out("speed") / "bench-style.onnx")
    except OnnxUnavailable as err:
        log.warning("no ONNX Runtime row: %s", err)
    rows += bench.inference_rows(model, inputs, device, low, sizes.repeats, onnx_file, compile)

    table = ctx.out("speed") / "bench.csv"
    summary = (f"training: style {sizes.style_size}² batch {sizes.style_batch}, SR ×4 {sizes.sr_patch}² batch "
               f"{sizes.sr_batch}, {sizes.iterations} iterations ({sizes.warmup} warm-up), loss over the last "
               f"{sizes.tail}; inference {', '.join(f'{s}²' for s in sizes.inference_sizes)}, median of "
               f"{sizes.repeats}; fast precision {prec}; network: {source}")
    store.write_table(pd.DataFrame([{**r, **_machine(device)} for r in rows]), table,
                      {**ctx.meta(sizes, style_config=cfg, sr_config=sr_cfg, tiny=tiny, compile=compile,
                                  inference_network=source), "summary": summary})
    return table


# ---------------------------------------------------------------------------------------------
# Fig. 8 / 9: super-resolution


SR_METHODS = ("pixel", "feat", "srcnn")


def sr_methods(factor: int) -> tuple[str, ...]:
    """The SR networks trained for ``factor``: SRCNN at ×4 only, as in the paper."""
    return tuple(m for m in SR_METHODS if m != "srcnn" or factor == 4)


def sr_config(ctx: Context, factor: int, method: str):
    """The profile's SR config for one network: its factor and iteration budget."""
    p = ctx.profile
    per_method = {(m, f): n for m, f, n in p.sr_method_iterations}
    iterations = per_method.get((method, factor), dict(p.sr_iterations).get(factor, p.sr.iterations))
    return replace(p.sr, factor=factor, iterations=p.srcnn_iterations if method == "srcnn" else iterations)


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
    ``sr_per_image.csv`` and ``sr_summary.csv`` (``protocol`` and ``matched`` columns)."""
    from perceptual.evaluation import similarity
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
    """This profile as a :class:`perceptual.core.config.Preset` with the values its runs use: the Fig. 5
    / Table 1 style's per-style λ (:func:`style_config`), the profile's L-BFGS iterations, and the
    training precision resolved for this context's device (``auto`` → bf16 or fp32)."""
    from perceptual.core.config import Preset
    from perceptual.runtime.precision import resolve

    p = ctx.profile
    style = style_config(ctx, p.style_file)
    style = replace(style, precision=resolve(style.precision, ctx.device))
    gatys_cfg = replace(PAPER.gatys, iterations=p.fig5_iterations, loss=style.loss)
    sr = replace(p.sr, precision=resolve(p.sr.precision, ctx.device))
    return Preset(f"this build ({p.name})", style, gatys_cfg, sr, PAPER.median_filter)


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
