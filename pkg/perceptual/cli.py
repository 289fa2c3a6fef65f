"""``perceptual`` command line. Run ``perceptual -h`` or ``perceptual COMMAND -h``.

Exit codes: 0 success; 1 some inputs failed (reported by name) or a run stopped; 2 bad usage or
missing data / weights (the message says how to get them); 128 + signal when Ctrl-C / SIGTERM
stopped a training run (after writing a checkpoint).

Every error met in ordinary use is one line on stderr, with no traceback unless ``--debug``.
Every number is checked when the arguments are parsed (:func:`int_in`), before torch is imported
(the modules that need it are imported by the command that runs), so a bad argument costs
nothing.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from perceptual.core import config
from perceptual.study import profiles
class UsageError(ValueError):
    """Arguments that parse but do not fit together (exit 2)."""


def int_in(lo: int, hi: int, why: str = ""):
    """An argparse ``type``: a whole number in [lo, hi], else a one-line message with the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {lo} to {hi}{why}")
        return value

    return parse


def unit_float(text: str) -> float:
    """An argparse ``type``: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value} is out of range: use 0 to 1")
    return value


BIG = 10 ** 9
NUMBERS = {  # option → type; the ranges a run can use
    "iterations": int_in(1, BIG),
    "image-size": int_in(41, 8192, " (the style network's 40 px reflection pad needs ≥ 41)"),
    "style-size": int_in(16, 8192),
    "batch-size": int_in(1, 1024),
    "seed": int_in(0, 2 ** 31 - 1),
    "workers": int_in(0, 64),
    "checkpoint-every": int_in(1, BIG),
    "patch": int_in(16, 8192),
}


def loss_network(name: str) -> str:
    """An argparse ``type``: a name in :data:`perceptual.method.vgg.SOURCES`."""
    from perceptual.method import vgg
    if name not in vgg.SOURCES:
        raise argparse.ArgumentTypeError(f"{name!r} is not a loss network: choose one of {', '.join(vgg.SOURCES)}")
    return name


def _cmd_data(args) -> int:
    from perceptual.core import data
    if args.action == "status":
        rows = data.status(check_hashes=args.check_hashes)  # DataError if PERCEPTUAL_DATA_ROOT does not exist
        print(f"data root: {data.paths.data_root()}")
        width = max(len(r["dataset"]) for r in rows)
        for r in rows:
            print(f"  {r['dataset']:<{width}}  {r['status']:<10} {r['files']:>6}/{r['expected']:<6} {r['folder']}")
            for bad in r.get("corrupt_files", ()):
                print(f"    corrupt: {bad['path']}  expected {bad['expected']}, found {bad['actual']}")
        corrupt = [r for r in rows if r["corrupt"]]
        if corrupt:
            n, names = sum(r["corrupt"] for r in corrupt), " ".join(r["dataset"] for r in corrupt)
            fix = ("replace them from the mirror's source (PERCEPTUAL_DATA_ROOT is never written to)"
                   if data.paths.data_root_is_mirror() else f"`perceptual data fetch {names}` downloads them again")
            print(f"error: {n} corrupt file{'s' if n > 1 else ''} in {names} (listed above); {fix}", file=sys.stderr)
            return 1
        return 0
    if not args.names:
        print("error: name the datasets to fetch: " + ", ".join(data.registry()), file=sys.stderr)
        return 2
    for name in args.names:
        data.get(name)  # an unknown name fails before any download
    for name in args.names:
        print(f"{name}: {data.fetch(name)}")
    return 0


def _cmd_profile(args) -> int:
    print(profiles.describe(profiles.get(args.name)))
    return 0


def _cmd_stylize(args) -> int:
    """Each output's path on stdout as it is written; skipped outputs, failures (one line each,
    naming the input) and the counts on stderr. Exit 1 when an input failed."""
    from tqdm.auto import tqdm

    from perceptual.tools.stylize import stylize_files

    def event(kind: str, _path: Path, line: str) -> None:  # above the progress bar, at once
        if kind == "written":
            tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()
        else:
            tqdm.write(f"failed: {line}" if kind == "failed" else line, file=sys.stderr)

    report = stylize_files(args.model, args.inputs, args.output, keep_colors=args.preserve_color,
                           median=args.median, device=args.device, suffix=args.format, max_side=args.max_side,
                           strength=args.strength, progress=not args.quiet, overwrite=args.overwrite,
                           precision=args.precision, tile=args.tile, on_event=event)
    if report.skipped:
        n = len(report.skipped)
        print(f"{n} existing output{'s' if n > 1 else ''} kept (complete; --overwrite recomputes them)", file=sys.stderr)
    if report.failed:
        total = len(report.failed) + len(report.written) + len(report.skipped)
        print(f"{len(report.failed)} of {total} inputs failed (named above); the others were written", file=sys.stderr)
    return 0 if report.ok else 1


def _cmd_export(args) -> int:
    from perceptual.tools.export import export_checkpoint

    out = Path(args.output)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    print(export_checkpoint(args.model, out))
    return 0


def _cmd_bench(args) -> int:
    from perceptual.study import experiments
    if args.sensitivity and args.compile:
        raise UsageError("argument --compile: --sensitivity measures losses, not speed; drop --compile")
    for name in ("size", "iterations"):
        if getattr(args, name) is not None and not args.sensitivity:
            raise UsageError(f"argument --{name}: sets the --sensitivity run; the bench's sizes are fixed (issue 12)")
    profile = profiles.get(args.profile)
    ctx = experiments.Context.create(profile, args.device)
    if args.cli:
        from perceptual.study.chapters.speed import speed_cli

        print(speed_cli(ctx, tiny=args.tiny))
    elif args.sensitivity:
        print(experiments.speed_sensitivity(ctx, tiny=args.tiny, progress=not args.quiet, size=args.size,
                                            iterations=args.iterations))
    else:
        print(experiments.speed_bench(ctx, tiny=args.tiny, compile=args.compile, progress=not args.quiet))
    return 0


def _workers(args) -> int:
    """--workers, else several on a GPU and none on a CPU (:func:`perceptual.method.train.loader_workers`)."""
    from perceptual.method.train import loader_workers, pick_device

    return args.workers if args.workers is not None else loader_workers(pick_device(args.device))


def _cmd_train_style(args) -> int:
    from perceptual.method.train import train_style

    style = Path(args.style)
    if style.is_dir():
        found = sorted(p.name for p in style.iterdir()
                       if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"))
        example = f" (e.g. {style / found[0]})" if found else ""
        raise UsageError(f"argument --style: {style} is a folder; give the style image file itself{example}")
    if not style.is_file():
        raise UsageError(f"argument --style: {style}: no such file; give the style image file")
    preset = config.PRESETS[args.preset]
    cfg = config.style_preset(args.style_preset, preset.style) if args.style_preset else preset.style
    overrides = {k: v for k, v in (("iterations", args.iterations), ("image_size", args.image_size),
                                   ("style_size", args.style_size), ("batch_size", args.batch_size),
                                   ("seed", args.seed), ("precision", args.precision)) if v is not None}
    cfg = replace(cfg, style=args.name or Path(args.style).stem, **overrides)
    if args.loss_network:
        cfg = replace(cfg, loss=replace(cfg.loss, network=args.loss_network))
    print(f"training {cfg.style} with {cfg.loss.network}; run folder {args.out}")
    print(train_style(cfg, Path(args.style), [Path(d) for d in args.data], Path(args.out), args.device,
                      workers=_workers(args), checkpoint_every=args.checkpoint_every, cuda_graph=args.cuda_graph,
                      deterministic=args.deterministic, compile=args.compile))
    return 0


def _cmd_train_sr(args) -> int:
    cfg = replace(config.PAPER.sr, factor=args.factor)
    overrides = {k: v for k, v in (("iterations", args.iterations), ("patch", args.patch),
                                   ("batch_size", args.batch_size), ("seed", args.seed),
                                   ("precision", args.precision)) if v is not None}
    cfg = replace(cfg, network=args.loss_network or cfg.network, **overrides)
    if cfg.patch % cfg.factor:
        low = cfg.patch - cfg.patch % cfg.factor
        raise UsageError(f"argument --patch: {cfg.patch} is not a multiple of --factor {cfg.factor} "
                         f"(try {low} or {low + cfg.factor})")
    from perceptual.method.superres import train_sr

    print(train_sr(cfg, args.method, [Path(d) for d in args.data], Path(args.out), args.device, workers=_workers(args),
                   checkpoint_every=args.checkpoint_every, cuda_graph=args.cuda_graph, deterministic=args.deterministic,
                   compile=args.compile))
    return 0


def _cmd_run(args) -> int:
    from perceptual.study import experiments
    known = {**experiments.STEPS, **experiments.DIAGNOSTICS}  # with no step named: every chapter's, no diagnostic
    unknown = [s for s in args.steps if s not in known]
    if unknown:
        print(f"error: unknown step {unknown[0]!r}; steps: {', '.join(known)}", file=sys.stderr)
        return 2
    profile = profiles.get(args.profile)
    print(profiles.describe(profile))
    ctx = experiments.Context.create(profile, args.device)
    for step in args.steps or experiments.STEPS:
        print(known[step](ctx))
    return 0


def _cmd_pack(args) -> int:
    from perceptual.study import transfer

    for path in transfer.pack(Path(args.folder), Path(args.out), args.max_files, args.max_mib * transfer.MIB):
        print(path)
    return 0


def _cmd_unpack(args) -> int:
    from perceptual.study import transfer

    print(transfer.unpack(Path(args.manifest), Path(args.dest)))
    return 0


def _cmd_reproduce(args) -> int:
    from perceptual.book import site as book
    profile = args.profile
    if args.deadline:  # every training process of this command (workers too) checkpoints and stops there
        os.environ["PERCEPTUAL_DEADLINE"] = str(time.time() + 60 * args.deadline)
    if args.smoke:  # the paper profile's path (or --profile's) in seconds: profiles.smoke
        profile = (profile or "paper") + profiles.SMOKE_SUFFIX
    if args.gpus or args.slurm:
        from perceptual.study import jobs
        slurm = jobs.SlurmOptions(partition=args.slurm_partition, time_min=args.slurm_time,
                                  gpus=args.slurm_gpus) if args.slurm else None
        return jobs.reproduce(profile, gpus=args.gpus or (), slurm=slurm, per_gpu=args.workers_per_gpu,
                              only=args.only, build=not args.no_book, device=args.device, then=book.reproduce)
    return book.reproduce(profile, only=args.only, build_book=not args.no_book, device=args.device)


def _gpu_list(text: str) -> list[str]:
    from perceptual.study.jobs import parse_gpus

    try:
        return parse_gpus(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _cmd_book(args) -> int:
    from perceptual.book import site as book
    return book.render_published(args.published) if args.published else book.build()


def _cmd_publish_results(args) -> int:
    from perceptual.study import published
    dst = published.publish(args.profile, max_side=args.max_side)
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file()) / 2 ** 20
    print(f"{dst} ({size:.1f} MB); commit it to show these results in a book built without computing")
    return 0


def _cmd_publish_bench(args) -> int:
    from perceptual.study import published
    dst = published.publish_bench(args.table, args.code_version)
    print(f"{dst}; commit it to show it in every book's Speed chapter")
    return 0


def tile_size(text: str) -> int:
    """An argparse ``type`` for --tile: a positive whole number (the network sets the minimum,
    checked when it is loaded: :func:`perceptual.tools.stylize.check_tile`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    if not 1 <= value <= 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a tile size: give pixels, at most 65536 and more than the "
                                         "tiles' overlap (the network sets it; stylize names it)")
    return value


def _cmd_compare(args) -> int:
    from perceptual.study import published
    table = published.compare(args.profile)
    width = max(len(n) for n in table.number)
    for r in table.itertuples():
        mark = "ok  " if r.within else "DIFF"
        print(f"{mark} {r.number:<{width}}  published {_short(r.published)}  fresh {_short(r.fresh)}  ({r.tolerance})")
    bad = int((~table.within).sum())
    print(f"{len(table) - bad} of {len(table)} numbers within tolerance of the published {args.profile} run")
    return 1 if bad else 0


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage is one ``-h`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _training_speed_options(p: argparse.ArgumentParser) -> None:
    """--device, --precision, --cuda-graph, --deterministic and --compile of the training commands."""
    p.add_argument("--device")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),  # precision.PRECISIONS
                   help="default: the config's (auto: bf16 where the device runs it fast — GPUs of compute "
                        "capability 8.0 and newer, AVX512-BF16/AMX CPUs — else fp32); Gram matrices, losses and "
                        "weights stay fp32")
    p.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction,
                   help="replay each step as one CUDA graph after three eager ones (CUDA, bf16 or fp32; "
                        "perceptual.runtime.trainstep). Default: wherever it can run, going on eagerly with a warning "
                        "if the step cannot be captured; --no-cuda-graph: always eager")
    p.add_argument("--deterministic", action="store_true",
                   help="cuDNN's deterministic convolutions instead of autotuned ones (CUDA; slower): a resumed "
                        "run then equals an uninterrupted one bit for bit, as it always does on a CPU")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (`perceptual bench --compile` measures it: it pays on a "
                        "CPU, not on a GPU, where the default CUDA graph is faster); compiling takes minutes; "
                        "not with --cuda-graph")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)  # accepted before or after the command
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
    p = Parser(prog="perceptual", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kw)

    d = command("data", help="dataset status and downloads")
    d.add_argument("action", choices=("status", "fetch"))
    d.add_argument("names", nargs="*")
    d.add_argument("--check-hashes", action="store_true", help="verify every file's hash (status)")
    d.set_defaults(func=_cmd_data)

    pr = command("profile", help="print a study profile")
    pr.add_argument("name", nargs="?")
    pr.set_defaults(func=_cmd_profile)

    s = command("stylize", help="apply a trained style network to files and folders")
    s.add_argument("model", help="model.pt or checkpoint.pt from training")
    s.add_argument("inputs", nargs="+", help="image files and/or folders")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--preserve-color", action="store_true", help="keep the input's colours (luminance transfer)")
    s.add_argument("--median", action="store_true", help="the authors' 3×3 median filter")
    s.add_argument("--strength", type=unit_float, default=1.0, help="style strength in [0, 1] (blend with the input)")
    s.add_argument("--format", default=".png", choices=(".png", ".jpg"), help="output format")
    s.add_argument("--max-side", type=int_in(16, 65536),
                   help="shrink larger inputs before stylising (output keeps the size)")
    s.add_argument("--overwrite", action="store_true",
                   help="recompute existing outputs (default: complete ones are kept, so a rerun resumes; "
                        "inputs are never replaced)")
    s.add_argument("--device")
    s.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16", "int8"),  # precision.INFERENCE_PRECISIONS
                   help="auto: bf16 where the device runs it fast (GPUs of compute capability 8.0 and newer, "
                        "AVX512-BF16/AMX CPUs), else fp32; "
                        "int8: residual blocks in int8 (CPUs with VNNI; calibrated, ≈ 45–52 dB from fp32)")
    s.add_argument("--tile", type=tile_size, help="process in overlapping tiles of this size, larger than their "
                                                  "overlap (default: only when an image would not fit in memory; "
                                                  "not for instance-norm models)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=_cmd_stylize)

    e = command("export", help="export a trained network to ONNX (dynamic size, batch norm folded)")
    e.add_argument("model", help="model.pt or checkpoint.pt from training")
    e.add_argument("output", help="the .onnx file to write")
    e.add_argument("--force", action="store_true", help="overwrite an existing output file")
    e.set_defaults(func=_cmd_export)

    bn = command("bench", help="training and inference speed: eager fp32 vs the fast paths and ONNX Runtime")
    bn.add_argument("--profile")
    bn.add_argument("--device")
    bn.add_argument("--tiny", action="store_true", help="a few iterations at tiny sizes (tests)")
    bn.add_argument("--compile", action="store_true", help="also time torch.compile (adds rows; slow to compile)")
    bn.add_argument("--sensitivity", action="store_true",
                    help="instead: how far the style loss after 200 iterations moves under perturbations of the "
                         "arithmetic (fp32/bf16, layouts, bf16 in one network, the style Grams' layout; 128², ≈ 20 min on "
                         "2 CPU cores)")
    bn.add_argument("--cli", action="store_true",
                    help="instead: the command line as a user runs it — stylize on 24 photos at 512² and train-style for "
                         "40 iterations at 128², batch 4, as whole processes beside the in-process times (cli.csv)")
    bn.add_argument("--size", type=int_in(16, 2048), help="--sensitivity's image size (default 128)")
    bn.add_argument("--iterations", type=int_in(20, 100_000), help="--sensitivity's run length (default 200; the loss is "
                                                          "kept every 20 iterations)")
    bn.add_argument("-q", "--quiet", action="store_true")
    bn.set_defaults(func=_cmd_bench)

    t = command("train-style", help="train a style transfer network")
    t.add_argument("--style", required=True, help="style image file")
    t.add_argument("--data", nargs="+", required=True, help="folders of training photos")
    t.add_argument("--out", required=True, help="run folder (checkpoints, logs; resumes if present)")
    t.add_argument("--preset", default="paper", choices=tuple(config.PRESETS))
    t.add_argument("--style-preset", choices=tuple(config.STYLES), help="the authors' per-style settings")
    t.add_argument("--name")
    for opt in ("iterations", "image-size", "style-size", "batch-size", "seed", "workers", "checkpoint-every"):
        t.add_argument(f"--{opt}", type=NUMBERS[opt], default=None)
    t.add_argument("--loss-network", type=loss_network, help="vgg16, vgg16-caffe, … (perceptual.method.vgg.SOURCES)")
    _training_speed_options(t)
    t.set_defaults(func=_cmd_train_style)

    r = command("train-sr", help="train a super-resolution network")
    r.add_argument("--factor", type=int, default=4, choices=(2, 4, 8))
    r.add_argument("--method", default="feat", choices=("feat", "pixel", "srcnn"))
    r.add_argument("--data", nargs="+", required=True)
    r.add_argument("--out", required=True)
    for opt in ("iterations", "patch", "batch-size", "seed", "workers", "checkpoint-every"):
        r.add_argument(f"--{opt}", type=NUMBERS[opt], default=None)
    r.add_argument("--loss-network", type=loss_network, help="vgg16, vgg16-caffe, … (perceptual.method.vgg.SOURCES)")
    _training_speed_options(r)
    r.set_defaults(func=_cmd_train_sr)

    x = command("run", help="compute results for a profile (what the notebooks read)")
    x.add_argument("steps", nargs="*", help="inversion, objective, qualitative, speed, superres (default: all of these), "
                                          "or a diagnostic run on request: feat-ablation (ℓ_feat SR, one change at a time)")
    x.add_argument("--profile")
    x.add_argument("--device")
    x.set_defaults(func=_cmd_run)

    rp = command("reproduce", help="compute everything, execute the notebooks, build the book")
    rp.add_argument("--profile", help="demo | small | paper (default: paper with a CUDA GPU, else demo)")
    rp.add_argument("--only", help="one chapter (notebook name)")
    rp.add_argument("--no-book", action="store_true")
    rp.add_argument("--device")
    rp.add_argument("--smoke", action="store_true",
                    help="the profile (default paper) with every count scaled to seconds, vgg19-caffe, "
                         "coco/val2014 for train2014 (what CI runs; see profiles.SMOKE)")
    rp.add_argument("--gpus", type=_gpu_list, help="train the independent networks concurrently, one per GPU: e.g. 0,1,2,3")
    rp.add_argument("--workers-per-gpu", type=int_in(1, 16), default=1,
                    help="with --gpus: train this many networks at a time on each GPU (a batch-4 step leaves a "
                         "large GPU mostly idle)")
    rp.add_argument("--deadline", type=int_in(1, 100_000), metavar="MINUTES",
                    help="stop training after this many minutes with every run checkpointed (exit 75); the same "
                         "command resumes. For machines lent by the hour")
    rp.add_argument("--slurm", action="store_true", help="train them as Slurm jobs through submitit (resumable)")
    rp.add_argument("--slurm-partition", help="Slurm partition (default: the cluster's)")
    rp.add_argument("--slurm-time", type=int, default=24 * 60, help="minutes per submission; requeued after it")
    rp.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per job (default 1)")
    rp.set_defaults(func=_cmd_reproduce)

    pk = command("pack", help="a folder as gzipped tar parts that fit a bounded way back (default: 8 files of 16 MiB)")
    pk.add_argument("folder", help="e.g. results/published/gpu")
    pk.add_argument("out", help="folder to write the parts and manifest into (e.g. $OUT)")
    pk.add_argument("--max-files", type=int_in(2, 1000), default=8)
    pk.add_argument("--max-mib", type=int_in(1, 100_000), default=16)
    pk.set_defaults(func=_cmd_pack)
    up = command("unpack", help="reassemble and check packed parts, then extract them")
    up.add_argument("manifest", help="the .manifest.json written by pack (its parts beside it)")
    up.add_argument("dest", help="folder to extract into (e.g. results/published)")
    up.set_defaults(func=_cmd_unpack)

    b = command("book", help="build the book from the executed notebooks (or from the published results)")
    b.add_argument("--published", metavar="PROFILE", help="render results/published/PROFILE (computes nothing)")
    b.set_defaults(func=_cmd_book)

    pb = command("publish-results", help="copy a profile's results (tables, downsized images, fp16 networks) "
                                         "to results/published/PROFILE")
    pb.add_argument("profile")
    pb.add_argument("--max-side", type=int_in(64, 4096), default=512, help="longest side of published images (px)")
    pb.set_defaults(func=_cmd_publish_results)

    pbb = command("publish-bench", help="copy a bench (or --sensitivity) table measured on another machine (a GPU "
                                        "box) to results/published/benchmarks/")
    pbb.add_argument("table", help="results/<profile>/speed/bench.csv or sensitivity.csv")
    pbb.add_argument("--code-version", help="the commit the run was made from, where its recorded one is stale "
                                            "(a tree copied to a lent machine); the recorded one is kept")
    pbb.set_defaults(func=_cmd_publish_bench)

    cp = command("compare", help="how a fresh run's numbers differ from the published ones (exit 1 outside tolerance)")
    cp.add_argument("--profile", default="cpu")
    cp.set_defaults(func=_cmd_compare)
    return p


EXIT_CODES: tuple[tuple[tuple[str, ...], int], ...] = (  # "module:Class", first match wins
    (("perceptual.tools.stylize:OutputError", "perceptual.tools.stylize:BadOption", "perceptual.method.memory:TooLarge",
      "perceptual.core.data:DataError", "perceptual.method.vgg:WeightsUnavailable", "builtins:KeyError",
      "builtins:FileNotFoundError", "builtins:NotADirectoryError", "builtins:IsADirectoryError"), 2),
    (("perceptual.core.images:ImageError", "builtins:ValueError", "builtins:RuntimeError", "builtins:OSError"), 1),
)


def exit_code(err: BaseException) -> int | None:
    """The exit code :data:`EXIT_CODES` gives ``err``, None for an unexpected error. Only loaded
    modules are looked at (an error cannot come from a module that was never imported)."""
    if isinstance(err, UsageError):  # this module's own class (also under ``python -m``)
        return 2
    for names, code in EXIT_CODES:
        for name in names:
            module, cls = name.split(":")
            if module in sys.modules and isinstance(err, getattr(importlib.import_module(module), cls)):
                return code
    return None


def one_line(err: BaseException) -> str:
    """An exception's message on one line (KeyError without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if args.verbose else logging.WARNING)  # files get INFO, the console less
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[console])
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 (the one place that turns errors into messages)
        if args.debug:
            raise
        if hasattr(err, "exit_code"):  # train.TrainingInterrupted: a checkpoint was written
            print(one_line(err), file=sys.stderr)
            return err.exit_code
        code = exit_code(err)
        if code is None:  # not an error we expect: say what it is and how to see more
            print(f"error: {type(err).__name__}: {one_line(err)} (rerun with --debug for the traceback)",
                  file=sys.stderr)
            return 1
        print(f"error: {one_line(err)}", file=sys.stderr)
        return code


def run() -> None:
    """The ``perceptual`` command: :func:`main`, then a fast exit. Tearing down an interpreter that
    imported PyTorch takes ≈ 1 s on a 2-core CPU, a third of a short command's overhead; everything
    is written by then (outputs atomically, logs flushed and closed here), so the process ends at once."""
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader that went away (`| head`): nothing more to say to it
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
