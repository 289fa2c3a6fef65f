"""``perceptual`` command line. Run ``perceptual -h`` or ``perceptual COMMAND -h``.

Exit codes: 0 success; 1 some inputs failed (reported by name) or a run stopped; 2 bad usage or
missing data / weights (the message says how to get them).
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from . import config, data, images, profiles, vgg


def _cmd_data(args) -> int:
    if args.action == "status":
        rows = data.status(check_hashes=args.check_hashes)
        print(f"data root: {data.paths.data_root()}")
        width = max(len(r["dataset"]) for r in rows)
        for r in rows:
            print(f"  {r['dataset']:<{width}}  {r['status']:<10} {r['files']:>6}/{r['expected']:<6} {r['folder']}")
        return 0
    if not args.names:
        print("error: name the datasets to fetch: " + ", ".join(data.registry()), file=sys.stderr)
        return 2
    root = data.paths.data_root()
    if data.paths.data_root_is_mirror() and not args.into_mirror:
        print(f"note: PERCEPTUAL_DATA_ROOT={root} is a local mirror; fetching into it (use --into-mirror to "
              "silence this)", file=sys.stderr)
    for name in args.names:
        print(f"{name}: {data.fetch(name, root)}")
    return 0


def _cmd_profile(args) -> int:
    print(profiles.describe(profiles.get(args.name)))
    return 0


def _cmd_stylize(args) -> int:
    from .stylize import stylize_files

    report = stylize_files(args.model, args.inputs, args.output, keep_colors=args.preserve_color,
                           median=args.median, device=args.device, suffix=args.format, max_side=args.max_side,
                           strength=args.strength, progress=not args.quiet, precision=args.precision,
                           tile=args.tile)
    for path in report.written:
        print(path)
    for path, err in report.failed:
        print(f"failed: {err}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} of {len(report.failed) + len(report.written)} inputs failed", file=sys.stderr)
    return 0 if report.ok else 1


def _cmd_export(args) -> int:
    from .export import export_checkpoint

    out = Path(args.output)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    print(export_checkpoint(args.model, out))
    return 0


def _cmd_bench(args) -> int:
    from . import experiments

    profile = profiles.get(args.profile)
    ctx = experiments.Context.create(profile, args.device)
    print(experiments.speed_bench(ctx, tiny=args.tiny, compile=args.compile, progress=not args.quiet))
    return 0


def _workers(args) -> int:
    """--workers, else several on a GPU and none on a CPU (:func:`perceptual.train.loader_workers`)."""
    from .train import loader_workers, pick_device

    return args.workers if args.workers is not None else loader_workers(pick_device(args.device))


def _cmd_train_style(args) -> int:
    from .train import train_style

    preset = config.PRESETS[args.preset]
    cfg = config.style_preset(args.style_preset, preset.style) if args.style_preset else preset.style
    overrides = {k: v for k, v in (("iterations", args.iterations), ("image_size", args.image_size),
                                   ("style_size", args.style_size), ("batch_size", args.batch_size),
                                   ("seed", args.seed)) if v is not None}
    cfg = replace(cfg, style=args.name or Path(args.style).stem, **overrides)
    if args.loss_network:
        cfg = replace(cfg, loss=replace(cfg.loss, network=args.loss_network))
    print(f"training {cfg.style} with {cfg.loss.network}; run folder {args.out}")
    print(train_style(cfg, Path(args.style), [Path(d) for d in args.data], Path(args.out), args.device,
                      workers=_workers(args)))
    return 0


def _cmd_train_sr(args) -> int:
    from .superres import train_sr

    cfg = replace(config.PAPER.sr, factor=args.factor)
    overrides = {k: v for k, v in (("iterations", args.iterations), ("patch", args.patch),
                                   ("batch_size", args.batch_size), ("seed", args.seed)) if v is not None}
    cfg = replace(cfg, network=args.loss_network or cfg.network, **overrides)
    print(train_sr(cfg, args.method, [Path(d) for d in args.data], Path(args.out), args.device, workers=_workers(args)))
    return 0


def _cmd_run(args) -> int:
    from . import experiments

    unknown = [s for s in args.steps if s not in experiments.STEPS]
    if unknown:
        print(f"error: unknown step {unknown[0]!r}; steps: {', '.join(experiments.STEPS)}", file=sys.stderr)
        return 2
    profile = profiles.get(args.profile)
    print(profiles.describe(profile))
    ctx = experiments.Context.create(profile, args.device)
    for step in args.steps or experiments.STEPS:
        print(experiments.STEPS[step](ctx))
    return 0


def _cmd_reproduce(args) -> int:
    from . import book

    return book.reproduce(args.profile, only=args.only, build=not args.no_book, device=args.device)


def _cmd_book(args) -> int:
    from . import book

    return book.build()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="perceptual", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="dataset status and downloads")
    d.add_argument("action", choices=("status", "fetch"))
    d.add_argument("names", nargs="*")
    d.add_argument("--check-hashes", action="store_true", help="verify every file's hash (status)")
    d.add_argument("--into-mirror", action="store_true")
    d.set_defaults(func=_cmd_data)

    pr = sub.add_parser("profile", help="print a study profile")
    pr.add_argument("name", nargs="?")
    pr.set_defaults(func=_cmd_profile)

    s = sub.add_parser("stylize", help="apply a trained style network to files and folders")
    s.add_argument("model", help="model.pt or checkpoint.pt from training")
    s.add_argument("inputs", nargs="+", help="image files and/or folders")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--preserve-color", action="store_true", help="keep the input's colours (luminance transfer)")
    s.add_argument("--median", action="store_true", help="the authors' 3×3 median filter")
    s.add_argument("--strength", type=float, default=1.0, help="style strength in [0, 1] (blend with the input)")
    s.add_argument("--format", default=".png", choices=(".png", ".jpg"), help="output format")
    s.add_argument("--max-side", type=int, help="shrink larger inputs before stylising (output keeps the size)")
    s.add_argument("--device")
    s.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 where the device runs it fast (CUDA, AVX512-BF16/AMX CPUs), else fp32")
    s.add_argument("--tile", type=int, help="process in overlapping tiles of this size (default: only when an "
                                            "image would not fit in memory; not for instance-norm models)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=_cmd_stylize)

    e = sub.add_parser("export", help="export a trained network to ONNX (dynamic size, batch norm folded)")
    e.add_argument("model", help="model.pt or checkpoint.pt from training")
    e.add_argument("output", help="the .onnx file to write")
    e.add_argument("--force", action="store_true", help="overwrite an existing output file")
    e.set_defaults(func=_cmd_export)

    bn = sub.add_parser("bench", help="training and inference speed: eager fp32 vs the fast paths and ONNX Runtime")
    bn.add_argument("--profile")
    bn.add_argument("--device")
    bn.add_argument("--tiny", action="store_true", help="a few iterations at tiny sizes (tests)")
    bn.add_argument("--compile", action="store_true", help="also time torch.compile (adds rows; slow to compile)")
    bn.add_argument("-q", "--quiet", action="store_true")
    bn.set_defaults(func=_cmd_bench)

    t = sub.add_parser("train-style", help="train a style transfer network")
    t.add_argument("--style", required=True, help="style image file")
    t.add_argument("--data", nargs="+", required=True, help="folders of training photos")
    t.add_argument("--out", required=True, help="run folder (checkpoints, logs; resumes if present)")
    t.add_argument("--preset", default="paper", choices=tuple(config.PRESETS))
    t.add_argument("--style-preset", choices=tuple(config.STYLES), help="the authors' per-style settings")
    t.add_argument("--name")
    for opt in ("iterations", "image-size", "style-size", "batch-size", "seed", "workers"):
        t.add_argument(f"--{opt}", type=int)
    t.add_argument("--loss-network", choices=tuple(vgg.SOURCES))
    t.add_argument("--device")
    t.set_defaults(func=_cmd_train_style)

    r = sub.add_parser("train-sr", help="train a super-resolution network")
    r.add_argument("--factor", type=int, default=4, choices=(2, 4, 8))
    r.add_argument("--method", default="feat", choices=("feat", "pixel", "srcnn"))
    r.add_argument("--data", nargs="+", required=True)
    r.add_argument("--out", required=True)
    for opt in ("iterations", "patch", "batch-size", "seed", "workers"):
        r.add_argument(f"--{opt}", type=int)
    r.add_argument("--loss-network", choices=tuple(vgg.SOURCES))
    r.add_argument("--device")
    r.set_defaults(func=_cmd_train_sr)

    x = sub.add_parser("run", help="compute results for a profile (what the notebooks read)")
    x.add_argument("steps", nargs="*", help="inversion, objective, qualitative, speed, superres (default: all)")
    x.add_argument("--profile")
    x.add_argument("--device")
    x.set_defaults(func=_cmd_run)

    rp = sub.add_parser("reproduce", help="compute everything, execute the notebooks, build the book")
    rp.add_argument("--profile", help="demo | small | paper (default: paper with a CUDA GPU, else demo)")
    rp.add_argument("--only", help="one chapter (notebook name)")
    rp.add_argument("--no-book", action="store_true")
    rp.add_argument("--device")
    rp.set_defaults(func=_cmd_reproduce)

    b = sub.add_parser("book", help="build the book from the executed notebooks")
    b.set_defaults(func=_cmd_book)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if args.verbose else logging.WARNING)  # files get INFO, the console less
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[console])
    try:
        return args.func(args)
    except (data.DataError, vgg.WeightsUnavailable, KeyError, FileNotFoundError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) and err.args else err}", file=sys.stderr)
        return 2
    except (images.ImageError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
