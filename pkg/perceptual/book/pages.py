"""What the book's notebooks call: parameters → context, figures, tables for people, and the
"How this page was made" box. Orchestration (computing, executing, building) is :mod:`perceptual.book`.

Tables (:func:`table`) have no index column, units in the headers, numbers rounded to what the
measurement supports (significant figures, not raw floats), and "—" for a missing value with a
footnote saying why. The box (:func:`made_by`) is generated from the results' ``.meta.json``
(:func:`perceptual.core.store.read_meta`), so it always describes the run that produced the page.
"""
from __future__ import annotations

import html
import math
import numbers
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from perceptual.core import paths, store
from perceptual.study import profiles

MISSING = "—"
_started: float | None = None  # when setup() ran in this kernel: the notebook's run time


def setup(profile: str, device: str | None = None, data_root: str | None = None, results: str | None = None):
    """Apply a notebook's parameters and return an :class:`perceptual.study.chapters.context.Context`."""
    global _started
    from perceptual.study.chapters.context import Context

    _started = time.monotonic()
    if data_root:
        os.environ["PERCEPTUAL_DATA_ROOT"] = data_root
    if results:
        os.environ["PERCEPTUAL_RESULTS"] = results
    return Context.create(profiles.get(profile), None if device in (None, "auto") else device)


def caption(table: Path, what: str, extra: str = "") -> str:
    """Markdown for a figure or table: what it shows and the one-line summary of its run. The full
    provenance (hardware, code version, …) is in the page's :func:`made_by` box."""
    meta = store.read_meta(table)
    summary = f" {meta['summary']}." if meta.get("summary") else ""
    return f"**{what}** {extra}{summary}".strip()


def image_grid(rows: list[list[Path | None]], titles: list[str] | None = None, row_labels: list[str] | None = None,
               size: float = 2.2, zoom: tuple[float, float, float] | None = None):
    """A matplotlib figure of image files (None leaves a blank cell). ``zoom=(cy, cx, frac)``
    shows the square of side ``frac`` (of the shorter side) centred at (cy, cx), pixels enlarged."""
    import matplotlib.pyplot as plt
    from PIL import Image

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            path = row[j] if j < len(row) else None
            if path is not None:
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    if zoom:
                        cy, cx, frac = zoom
                        half = frac * min(im.size) / 2
                        im = im.crop((round(cx * im.width - half), round(cy * im.height - half),
                                      round(cx * im.width + half), round(cy * im.height + half)))
                    ax.imshow(im, interpolation="nearest" if zoom else "antialiased")
            if titles and i == 0 and j < len(titles):
                ax.set_title(titles[j], fontsize=9)
            if row_labels and j == 0:
                ax.text(-0.05, 0.5, row_labels[i], transform=ax.transAxes, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# tables for people


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        (hasattr(value, "dtype") and str(value) in ("nan", "NaT", "<NA>"))


def number(value: Any, sig: int = 3) -> str:
    """``value`` rounded to ``sig`` significant figures, thousands separated, never in e-notation
    between 1e-4 and 1e9: 1057.333 → "1,060", 0.071596 → "0.0716", 212.0 → "212", nan → "—"."""
    if is_missing(value):
        return MISSING
    if isinstance(value, str) or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):  # counts are exact
        return f"{int(value):,}"
    x = float(value)
    if x == 0:
        return "0"
    if not 1e-4 <= abs(x) < 1e9:
        return f"{x:.{sig - 1}e}"
    decimals = max(0, sig - 1 - math.floor(math.log10(abs(x))))
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > math.floor(math.log10(abs(x))):
        decimals = max(0, decimals - 1)  # 9.996 → 10.0, not 10.00
    return f"{rounded:,.{decimals}f}"


Format = str | Callable[[Any], str]
_NUMERIC = re.compile(r"^(—|[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s*[×%²]?|> ?\d+)$")  # right-aligned cells
_CODE = re.compile(r"`([^`<>]+)`")  # a backticked span in a table note


def _note_html(note: str) -> str:
    """A table note as HTML: escaped, with `command` spans as code, as in the page's text."""
    return _CODE.sub(r"<code>\1</code>", html.escape(note))


def _formatter(spec: Format | None, sig: int) -> Callable[[Any], str]:
    if callable(spec):
        return lambda v: MISSING if is_missing(v) else spec(v)
    if spec is None:
        return lambda v: number(v, sig) if not isinstance(v, str) else v
    return lambda v: MISSING if is_missing(v) else v if isinstance(v, str) else format(v, spec)


def _breakable(text: str) -> str:
    """Escaped cell text that may wrap after the dots and underscores of identifiers
    (``style.loss.content_layers``), so that a table fits its column without breaking words."""
    return re.sub(r"([._/])(?=\w)", r"\1<wbr>", html.escape(text))


@dataclass
class Table:
    """A formatted table: header strings, rows of cell strings, footnotes. Displays as HTML."""

    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    caption: str = ""

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        cell = lambda c: f"<td class='num'>{html.escape(c)}</td>" if _NUMERIC.match(c) else f"<td>{_breakable(c)}</td>"  # noqa: E731
        body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in self.rows)
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        notes = "".join(f"<p class='table-note'>{_note_html(n)}</p>" for n in self.notes)
        return (f"<div class='people-table'><table class='table'>{cap}<thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>{notes}</div>")

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines + [""] + self.notes)


def table(frame, columns: dict[str, str] | None = None, formats: dict[str, Format] | None = None,
          missing: str = "not measured in this build", notes: Iterable[str] = (), sig: int = 3,
          caption: str = "") -> Table:
    """A DataFrame for people: ``columns`` selects, orders and renames (put units in the new
    names: ``{"feedforward": "feed-forward (s)"}``); ``formats`` maps a source column to a format
    spec (``".2f"``) or a function; other numbers get ``sig`` significant figures. No index column
    (reset it first if it carries data). Missing values show as "—", explained by ``missing``."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    if isinstance(frame.columns, pd.MultiIndex):
        frame = frame.copy()
        frame.columns = [" · ".join(str(p) for p in c if str(p)) for c in frame.columns]
    columns = columns or {c: str(c) for c in frame.columns}
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise KeyError(f"table: no column {absent[0]!r}; columns are {', '.join(map(str, frame.columns))}")
    formats = formats or {}
    fmt = {c: _formatter(formats.get(c), sig) for c in columns}
    rows = [[fmt[c](v) for c, v in zip(columns, values)] for values in frame[list(columns)].itertuples(index=False)]
    notes = list(notes)
    if any(MISSING in r for r in rows):
        notes.insert(0, f"{MISSING} {missing}.")
    return Table(list(columns.values()), rows, notes, caption)


def _bench_rules() -> str:
    from perceptual.study import bench

    return (f"Rule: a speed goal takes the best fast row (inference rows only with PSNR ≥ {bench.MIN_PSNR:g} dB "
            "against the network as trained; compiled or CUDA-graph training rows only if their first 20 "
            f"iterations' mean loss is within {100 * bench.SAME_TRAINING:g} % of the fast path's); the loss agreement takes the reduced-precision fast path, final "
            "20-iteration mean loss / the fp32 run's. fp32 repeat: the same ratio between two fp32 runs (CUDA "
            "only: autotuned cuDNN is not bit-reproducible).")


def bench_tables(path: Path) -> list[Table]:
    """The Speed chapter's view of one ``perceptual bench`` table: the targets judged by
    :func:`perceptual.study.bench.judge`, training iterations/s with the loss agreement, and inference
    seconds per image with the PSNR of each path, sizes side by side."""
    import pandas as pd

    from perceptual.study import bench

    df, meta = pd.read_csv(path), store.read_meta(path)
    where = f"{df.hardware.iloc[0]}; profile {meta.get('profile')}, loss network {meta.get('loss_network')}, " \
            f"code {version(meta.get('code_version'))}"
    judged = bench.judge(df).assign(verdict=lambda t: t.met.map({True: "met", False: "missed"}))
    targets = table(judged, {"target": "goal", "rule": "rule", "measured": "measured", "variant": "best path",
                             "fp32_repeat": "fp32 repeat", "verdict": "verdict"},
                    caption=f"Speed goals of this implementation, met or missed — {where}", missing="not applicable",
                    notes=[_bench_rules()])
    train = table(df[df.kind == "train"], {"case": "case", "variant": "path", "its_per_s": "iterations/s",
                                           "speedup": "speed-up (×)", "final_loss": "final loss",
                                           "loss_ratio": "loss / fp32"},
                  formats={"its_per_s": ".2f", "speedup": ".2f", "loss_ratio": ".3f"},
                  caption="Training: iterations per second after the warm-up, and the loss agreement",
                  notes=[f"Settings: {meta.get('summary', '')}."])
    rows = df[df.kind == "inference"]
    cells = rows.assign(cell=[f"{number(r.seconds)} s · {r.speedup:.2f}× · "
                              f"{'identical' if r.psnr_vs_fp32 == float('inf') else f'{r.psnr_vs_fp32:.1f} dB'}"
                              for r in rows.itertuples()])
    infer = cells.pivot(index="variant", columns="size", values="cell").reindex(rows.variant.unique())  # bench order
    infer.columns = [f"{int(size)}²" for size in infer.columns]
    infer = infer.reset_index().rename(columns={"variant": "path"})
    return [targets, train, table(infer, caption="Inference: seconds per image · speed-up over the network as "
                                                 "trained · PSNR against it",
                                  notes=["ONNX Runtime runs on its CPU execution provider, on a GPU box too."] + (
                                      ["fast-int8 (CPUs with VNNI): the residual blocks' convolutions in int8, "
                                       "calibrated on scikit-image photographs; the other layers in bf16 where the "
                                       "CPU has it, else fp32 (perceptual.runtime.quantization)."]
                                      if (rows.variant == "fast-int8").any() else []))]


def _float32_runs(df):
    """The sensitivity rows perturbed in float32 only (not the first, the reference)."""
    return (df.transformation_net == "fp32") & (df.loss_net == "fp32") & (df.index > 0)


def _noise_verdict(df, ratio, iterations: int) -> str:
    """The sensitivity rule on one column of loss ratios: the noise is the largest move of the
    float32 runs; the loss agreement resolves a precision only where that noise is within it."""
    from perceptual.study import bench

    move = (ratio - 1).abs()
    noise, limit = move[_float32_runs(df)].max(), bench.LOSS_AGREEMENT
    fast = move[df.variant == "bf16"]
    bf16 = f"; bf16, as the fast path runs it, moved it by {100 * fast.iloc[0]:.1f} %" if len(fast) else ""
    placed = ratio[(df.transformation_net == "bf16") | (df.loss_net == "bf16")] - 1  # bf16 anywhere
    if len(placed) > 1:
        bf16 += f" (bf16 in any layout or network: {100 * placed.min():+.1f} % to {100 * placed.max():+.1f} %)"
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    runs = "float32 runs that differ only in summation order or in their style images' Gram matrices move it by"
    if noise > limit:
        return (f"after {iterations} iterations {runs} up to {pct(noise)}, more than the loss agreement's "
                f"{100 * limit:g} %: the agreement cannot tell a precision from such noise there{bf16}")
    return (f"after {iterations} iterations {runs} at most {pct(noise)}, within the loss agreement's "
            f"{100 * limit:g} %: the agreement can resolve a precision effect beyond that{bf16}")


def sensitivity_table(path: Path) -> Table:
    """``perceptual bench --sensitivity``: the style run's final loss under each perturbation of
    its arithmetic, as a ratio to the first run (the bench's fp32 NCHW baseline), and what that says
    about the loss agreement (``bench.LOSS_AGREEMENT``) by a stated rule (:func:`_noise_verdict`).
    A run longer than the bench's also shows the ratios at the bench's length, from its loss curve."""
    import pandas as pd

    from perceptual.study.chapters.speed import BENCH

    df, meta = pd.read_csv(path), store.read_meta(path)
    n = int(df.iterations.iloc[0])
    verdicts = [_noise_verdict(df, df.ratio, n)]
    extra = {}
    if n > BENCH.iterations and "curve" in df:  # the window that ends where the bench's run ends
        window = n // len(df.curve.iloc[0].split())  # iterations per curve point (the run's tail)
        at = df.curve.map(lambda c: float(c.split()[BENCH.iterations // window - 1]))
        df = df.assign(ratio_at_bench=at / at.iloc[0])
        extra = {"ratio_at_bench": f"loss ratio after {BENCH.iterations}"}
        verdicts.insert(0, _noise_verdict(df, df.ratio_at_bench, BENCH.iterations))
    shown = df.assign(layout=df.channels_last.map({True: "channels-last", False: "NCHW"}),
                      nets=df.transformation_net + " / " + df.loss_net)
    grams = {"style_grams": "style Grams in"} if "style_grams" in df else {}
    gradient, notes = {}, []
    if "grad_error" in df:  # tables from before session 7 have no gradient columns
        shown = shown.assign(grad=df.grad_error.map(_percent))
        gradient, notes = {"grad": "gradient error, step 1"}, [_gradient_note(df)]
    return table(shown, {"variant": "run", "nets": "precision: transformation / loss net", "layout": "layout",
                         **grams, **gradient, **extra, "final_loss": "final loss", "ratio": "loss ratio"},
                 formats={"ratio": ".3f", "ratio_at_bench": ".3f", "final_loss": ".6g"},
                 caption=f"How far the style loss after {n} iterations moves when "
                         f"its arithmetic is perturbed — {df.hardware.iloc[0]}; code {version(meta.get('code_version'))}",
                 notes=[f"Settings: {meta.get('summary', '')}; the same initial weights, batches and seed in "
                        f"every run; loss network {meta.get('loss_network')}. Loss ratio: final loss / the first "
                        "run's (float32, NCHW: the bench's baseline, what its loss agreement divides by).", *notes,
                        f"Rule: the noise is the largest |loss ratio − 1| of the float32 runs; {'; '.join(verdicts)}."])


def _percent(value: float) -> str:
    return f"{100 * value:.3g} %"


def _gradient_note(df) -> str:
    """What the first step's gradient error says: each perturbation before training amplifies it."""
    from perceptual.study.bench import GRADIENT_BATCHES

    fast = df.grad_error[df.variant == "bf16"]
    bf16 = f"; bf16, as the fast path runs it, {_percent(fast.iloc[0])}" if len(fast) else ""
    return ("Gradient error, step 1: ‖g − g₀‖ / ‖g₀‖ of the transformation network's gradient at the initial "
            f"weights (mean over the first {GRADIENT_BATCHES} batches), g₀ the first run's — each perturbation before training "
            f"amplifies it. Float32 runs: at most {_percent(df.grad_error[_float32_runs(df)].max())}{bf16}; the gradients of "
            f"the first and the last of those batches are {_percent(df.batch_spread.iloc[0])} apart.")


def bench_runs(files: list[Path]) -> list[Table]:
    """Several bench tables of one kind of machine (published from a GPU box, say) side by side:
    the targets judged in each run, and each run's headline numbers, one row per run."""
    import pandas as pd

    from perceptual.study import bench

    runs = [(pd.read_csv(f), store.read_meta(f)) for f in files]
    label = lambda m: f"{m.get('created', '?')[:16].replace('T', ' ')}"  # noqa: E731
    judged = {label(m): bench.judge(df) for df, m in runs}
    first = next(iter(judged.values()))
    cell = lambda r: f"{number(r.measured)} {'met' if r.met else 'missed'}"  # noqa: E731
    targets = pd.DataFrame({"goal": first.target, "rule": first.rule,
                            **{run: [cell(r) for r in j.itertuples()] for run, j in judged.items()}})

    def headline(df: pd.DataFrame, meta: dict) -> dict:
        row = {"run": label(meta), "code": f"{version(meta.get('code_version'))} · {meta.get('source_hash', '—')}"}
        for case, name in (("style-256-b4", "style"), ("sr-x4-288-b4", "SR ×4")):
            part = df[df.case == case].set_index("variant")
            fast = part[part.index.str.startswith("fast")]
            if len(fast):
                repeat = part.loss_ratio.get("eager-fp32-repeat")
                graphed = part[part.index.str.startswith("graphed")]  # CUDA only, and not in older runs
                speeds = [part.its_per_s.get("eager-fp32", float("nan")), fast.its_per_s.iloc[0],
                          *graphed.its_per_s.iloc[:1]]
                row[f"{name} it/s: eager → fast (→ graphed)"] = " → ".join(number(v) for v in speeds)
                row[f"{name} loss ratio (fp32 repeat)"] = f"{fast.loss_ratio.iloc[0]:.3f}" + (
                    f" ({repeat:.3f})" if repeat is not None else "")
        infer = df[(df.kind == "inference") & ~df.variant.str.startswith("eager")]
        if len(infer):  # the largest size's fastest accurate-or-not fast path
            big = infer[infer["size"] == infer["size"].max()]
            row[f"{int(big['size'].iloc[0])}² best s"] = big.seconds.min()
        return row

    hardware = runs[0][0].hardware.iloc[0]
    return [table(targets, caption=f"Speed goals in each run on {hardware}",
                  notes=[_bench_rules(), "Each column is one run of `perceptual bench`, published with "
                                         "`perceptual publish-bench`."]),
            table(pd.DataFrame([headline(df, m) for df, m in runs]),
                  caption=f"Each run's numbers on {hardware} (profile {runs[0][1].get('profile')}, "
                          f"loss network {runs[0][1].get('loss_network')})",
                  notes=["fp32 repeat: the loss ratio between two fp32 runs from the same seed — the noise "
                         "floor of the loss agreement where convolutions are not bit-reproducible. code: git "
                         "describe · sha256 of the package sources (— where the run predates it)."])]


def cli_table(path: Path) -> Table:
    """``perceptual bench --cli``'s table (``speed/cli.csv``): each command as a whole process beside
    the same work timed inside one process, and the bound it is held to."""
    import pandas as pd

    df = pd.read_csv(path)
    per = ["photo" if c == "stylize" else "iteration" for c in df.command]
    df = df.assign(unit=[f"{u:.3g} s per {w}" + (f" ({p}, {d:.1f} dB from fp32)" if pd.notna(d) else f" ({p})")
                         for u, w, p, d in zip(df.unit_seconds, per, df.precision, df.psnr_db)],
                   met=df.met.map({True: "yes", False: "no"}))
    columns = {"command": "command", "work": "work", "seconds": "whole process (s)", "cold_seconds": "first run (s)"}
    if "first_seconds" in df:  # tables written before the pace was recorded lack these
        df = df.assign(pace=[f"{f:.1f} s to the first {w}, then {s:.3g} s per {w}"
                             for f, s, w in zip(df.first_seconds, df.steady_unit_seconds, per)])
        columns["pace"] = "inside the process"
    return table(df, {**columns, "unit": "in-process, same run", "bound_seconds": "bound (s)", "met": "within"},
                 notes=[f"Measured on {df.hardware.iloc[0]}. The whole process is the second run (the first, cold, "
                        "fills the caches a user's later runs find: the int8 calibration and its check, the memory "
                        "estimate); bound: N × the in-process time + 2 s (stylize) or + 3 s (train-style). Inside the "
                        "process: from launch to the first photo written or iteration done, then the median time "
                        "between later ones."])


def ablation_table(path: Path) -> Table:
    """The ℓ_feat super-resolution ablation (``superres/feat_ablation.csv``,
    :mod:`perceptual.study.chapters.sr_ablation`): one change per row group, scored on Set5."""
    import pandas as pd

    df = pd.read_csv(path)
    meta = store.read_meta(path) if store.meta_path(path).is_file() else {}
    changes = "; ".join(f"{v}: {c}" for v, c in dict(zip(df.variant, df.change)).items())
    df = df.assign(works=df.works.map({True: "yes", False: "no"}), name=df.variant,
                   psnr_cell=[f"{p:.2f} ({p - b:+.2f})".replace("-", "−")
                              for p, b in zip(df.psnr_matched, df.bicubic_psnr)],
                   ssim_cell=[f"{s:.3f} ({s / b:.2f}×)" for s, b in zip(df.ssim_matched, df.bicubic_ssim)])
    b = df.iloc[0]
    from perceptual.study.claims import FEAT_GATE_DB, FEAT_GATE_SSIM

    floor = df.psnr_matched - (df.bicubic_psnr - FEAT_GATE_DB)  # dB above the gate's PSNR floor (negative: below)
    best = df.loc[floor.idxmax()]
    passing = sorted(set(df.name[df.works == "yes"]))
    verdict = (f"Passing the gate: {', '.join(passing)}." if passing else "No variant passes the gate.") + \
        (f" Closest: {best['name']}, after {best.iterations:,} iterations, {best.psnr_matched:.2f} dB / "
         f"{best.ssim_matched:.3f}.")
    return table(df, {"variant": "variant", "iterations": "iterations", "train_seconds": "training (s)",
                      "psnr_cell": "PSNR, dB (vs bicubic)", "ssim_cell": "SSIM (× bicubic's)",
                      "hf_ratio": "high band / truth's", "hf_corr": "high-band corr.", "works": "gate"},
                 formats={"hf_ratio": ".1f", "hf_corr": ".3f", "train_seconds": ",.0f", "iterations": ",d"},
                 caption=meta.get("summary", "ℓ_feat ablation"),
                 notes=[verdict, f"Variants: {changes}.",
                        f"Bicubic on this set: {b.bicubic_psnr:.2f} dB / {b.bicubic_ssim:.3f}. PSNR and SSIM of the "
                        "network outputs histogram-matched to the input, as in the paper and the claims' gate: ℓ_feat "
                        f"within {FEAT_GATE_DB:g} dB of bicubic with SSIM ≥ {FEAT_GATE_SSIM:g} × bicubic's. High-band "
                        "energy and correlation: above "
                        "0.25 cycles/px, relative to the ground truth (1 = as much as the truth; correlation 1 = the "
                        "right detail)."])


def published_benchmarks() -> list[Table]:
    """:func:`bench_runs` for every machine with tables under ``results/published/benchmarks``."""
    import pandas as pd

    folder = paths.published_benchmarks_dir()
    groups: dict[str, list[Path]] = {}
    for f in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        groups.setdefault(str(pd.read_csv(f).hardware.iloc[0]), []).append(f)
    return [t for files in groups.values() for t in bench_runs(files)]


def published_sensitivity() -> list[Table]:
    """:func:`sensitivity_table` for every table under ``results/published/benchmarks/sensitivity``."""
    folder = paths.published_sensitivity_dir()
    return [sensitivity_table(f) for f in sorted(folder.glob("*.csv"))] if folder.is_dir() else []


# ---------------------------------------------------------------------------------------------
# "How this page was made"


def command(chapter: str, profile: str) -> str:
    """The command that regenerates one chapter (``make chapter``, see the Makefile)."""
    root = " DATA_ROOT=…" if paths.data_root_is_mirror() else ""
    return f"make chapter NAME={chapter} PROFILE={profile}{root}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _machine(hw: dict) -> str:
    cpu = f"{hw.get('cpu', '?')} ({hw.get('cpu_threads', '?')} threads)"
    tf32 = ", float32 convolutions in TF32" if hw.get("tf32_convolutions") else ""  # PyTorch's default on a GPU
    gpu = f"{hw['gpu']} (CUDA {hw.get('cuda')}{tf32}), " if hw.get("gpu") else ""
    return f"{gpu}{cpu}; device {hw.get('device', 'cpu')}, torch {hw.get('torch', '?')}, Python {hw.get('python', '?')}"


def made_by_rows(chapter: str, ctx, tables: Iterable[Path] = ()) -> list[tuple[str, str]]:
    """(label, value) rows of the box: from the tables' meta files, else from this machine now."""
    p = ctx.profile
    metas = [(Path(t), store.read_meta(t)) for t in tables]
    first = metas[0][1] if metas else {}
    hw = first.get("hardware") or store.hardware(ctx.device)
    data = "images shipped with scikit-image (embedded demo data)" if p.data == "demo" else \
        f"the data root (a local copy of the datasets, `DATA_ROOT=…`): content {p.content_dir}, style {p.style_file}"
    rows = [("Profile", f"{p.name} — {p.description}"), ("Data", data),
            ("Loss network", str(first.get("loss_network") or p.loss_network)),
            ("Hardware", _machine(hw)),
            ("Code version", version(first.get("code_version") or store.code_version()))]
    for path, meta in metas:
        shown = shown_path(path)
        took = f", computed in {_duration(meta['compute_seconds'])}" if "compute_seconds" in meta else ""
        rows.append(("Results", f"{shown} (written {meta.get('created', '?')}{took})"))
    if _started is not None:
        rows.append(("Run time", f"this notebook ran in {_duration(time.monotonic() - _started)} "
                                 "(cached results are reused, not recomputed)"))
    if paths.read_only():
        rows.insert(0, ("Shown from", f"the published results in {shown_path(paths.results_dir() / p.name)} (read, not "
                                      "recomputed for this page); `perceptual compare` checks a fresh run against them"))
    rows.append(("Regenerate", command(chapter, p.name)))
    return rows


def version(code_version: Any) -> str:
    """A code version for readers: ``git describe`` without ``-dirty`` (said in words instead)."""
    text = str(code_version or "?")
    return text[:-len("-dirty")] + " with local changes" if text.endswith("-dirty") else text


def shown_path(path: Path | str) -> str:
    """A path as a page may show it: relative to the checkout (``results/published/cpu``), never a
    machine's absolute path (a path elsewhere shows as its last two parts)."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    for base in [b for b in (paths.ROOT,) if b is not None] + [paths.results_dir().parent]:
        try:
            return path.resolve().relative_to(Path(base).resolve()).as_posix()
        except ValueError:
            continue
    return "…/" + "/".join(path.parts[-2:])


def made_by(chapter: str, ctx, tables: Iterable[Path] = ()):
    """The folded "How this page was made" box at the end of a chapter (an HTML display)."""
    from IPython.display import HTML

    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{_code(k, v)}</dd>" for k, v in made_by_rows(chapter, ctx, tables))
    return HTML(f"<details class='made-by'><summary>How this page was made</summary><dl>{items}</dl></details>")


def _code(label: str, value: str) -> str:
    return f"<code>{html.escape(value)}</code>" if label in ("Regenerate", "Code version") else html.escape(value)


# bookkeeping that does not change what is computed, and fields another row already shows
_NOT_SETTINGS = {"name", "description", "notes", "cpu", "style.style", "style.loss.network", "sr.network",
                 "style.checkpoint_every", "style.val_every", "style.val_images", "sr.checkpoint_every",
                 "sr.val_every", "sr.val_images"}


def _setting(value: Any, key: str = "") -> str:
    if key == "sr_train_images":
        return "all photos" if value == 0 else f"{int(value):,}"
    if key == "sr_iterations" and value:  # (factor, iterations) pairs
        return ", ".join(f"×{f}: {n}" for f, n in value)
    if key == "sr_method_iterations" and value:  # (method, factor, iterations)
        return ", ".join(f"{m} ×{f}: {n}" for m, f, n in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or (isinstance(value, (tuple, list)) and not value):
        return "—"
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], (tuple, list)):
        return ", ".join(f"{v[0]} ({', '.join(map(str, v[1:]))})" for v in value)  # (name, folder) pairs
    if isinstance(value, (tuple, list)):
        return ", ".join(_setting(v) for v in value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}" if abs(value) >= 10_000 else str(value)  # sizes stay 1024
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and "/" in value and Path(value).suffix:
        return Path(value).name  # styles/fast-neural-style/la_muse.jpg → la_muse.jpg
    return str(value)


def settings_vs_paper(profile) -> Table:
    """The profile's settings that differ from the ``paper`` profile (the intro's table)."""
    from perceptual.core.config import flatten

    paper = {k: v for k, v, _ in flatten(profiles.PROFILES["paper"])}
    rows = [[k, _setting(paper.get(k), k), _setting(v, k)] for k, v, _ in flatten(profile)
            if k not in _NOT_SETTINGS and paper.get(k) != v]
    return Table(["setting", "paper", f"this build ({profile.name})"], rows)


# ---------------------------------------------------------------------------------------------
# figures for people: image panels ≥ 256 px wide in a grid that wraps, real alt text

PANEL_PX = 256  # the narrowest an image panel is shown (the grid wraps to keep it)


def _image_uri(image, max_side: int = 640, lossless: bool = False) -> str:
    import base64
    import io

    from PIL import Image

    if not hasattr(image, "convert"):
        with Image.open(image) as im:
            image = im.convert("RGB")
    image = image.convert("RGB")
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.LANCZOS)
    buf = io.BytesIO()
    if lossless or max(image.size) <= 256:
        image.save(buf, "PNG", optimize=True)
        kind = "png"
    else:
        image.save(buf, "JPEG", quality=90)
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode()


def zoom_crop(path: Path, zoom: tuple[float, float, float], size: int = 384):
    """The square of side ``frac`` (of the shorter side) centred at (cy, cx), enlarged to ``size`` px
    with nearest-neighbour pixels (``zoom=(cy, cx, frac)``)."""
    from PIL import Image

    cy, cx, frac = zoom
    with Image.open(path) as im:
        im = im.convert("RGB")
        half = frac * min(im.size) / 2
        box = (round(cx * im.width - half), round(cy * im.height - half),
               round(cx * im.width + half), round(cy * im.height + half))
        return im.crop(box).resize((size, size), Image.NEAREST)


@dataclass
class Panel:
    """One image of a figure: a file (or PIL image), its label under it, and its alt text."""

    image: Any
    label: str
    alt: str = ""
    lossless: bool = False


def figure(panels: Iterable[Panel | None], caption_md: str = "", columns: int | None = None, label: str = ""):
    """An HTML figure: image panels in a grid that wraps so each is at least :data:`PANEL_PX` wide,
    a readable label under each, alt text on each, and a caption. ``columns`` caps the panels per
    row (a comparison keeps its pairs). A None panel leaves a gap."""
    from IPython.display import HTML

    cells = []
    for p in panels:
        if p is None:
            cells.append("<div class='panel'></div>")
            continue
        if isinstance(p.image, (str, Path)) and not Path(p.image).is_file():
            cells.append(f"<figure class='panel missing'><figcaption>{html.escape(p.label)}: not available "
                         "in these results</figcaption></figure>")
            continue
        uri = _image_uri(p.image, lossless=p.lossless)
        cells.append(f"<figure class='panel'><img src='{uri}' alt='{html.escape(p.alt or p.label, quote=True)}'>"
                     f"<figcaption>{html.escape(p.label)}</figcaption></figure>")
    style = f" style='grid-template-columns: repeat({columns}, minmax({PANEL_PX}px, 1fr))'" if columns else ""
    cap = f"<p class='figure-caption'>{_markdown_inline(caption_md)}</p>" if caption_md else ""
    anchor = f" id='{html.escape(label)}'" if label else ""
    return HTML(f"<div class='panel-figure'{anchor}><div class='panel-grid'{style}>{''.join(cells)}</div>{cap}</div>")


def _markdown_inline(text: str) -> str:
    """**bold**, *italic* and `code` of a caption as HTML (the rest escaped)."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"(?<![*\w])\*(?!\s)(.+?)\*(?!\w)", r"<i>\1</i>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def plot(fig, alt: str, caption_md: str = "", label: str = ""):
    """A matplotlib figure as an HTML image with alt text (and a caption), closed afterwards;
    ``label``: its anchor (``fig5``), which the claims table links to."""
    import base64
    import io

    import matplotlib.pyplot as plt
    from IPython.display import HTML

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    cap = f"<p class='figure-caption'>{_markdown_inline(caption_md)}</p>" if caption_md else ""
    anchor = f" id='{html.escape(label)}'" if label else ""
    return HTML(f"<div class='plot-figure'{anchor}><img src='{uri}' alt='{html.escape(alt, quote=True)}'>{cap}</div>")


def short_reason(text: Any) -> str:
    """A failed optional step as one short reason, never a raw exception: "weights not available
    offline", "package not installed", else the text up to its first parenthesis or colon."""
    t = str(text or "")
    t = t.split(":", 1)[1].strip() if t.lower().startswith("not computed") and ":" in t else t
    low = t.lower()
    if any(w in low for w in ("download", "cannot reach", "could not get", "not in the torch hub", "service not known")):
        return "weights not available offline"
    if "pip install" in low or "no module" in low:
        return "its package is not installed"
    return re.split(r"\s[(:]", t, maxsplit=1)[0].strip() or "not available"


def metric_status(name: str, status: Any) -> str:
    """"LPIPS: not computed (weights not available offline)." — or "" when it was computed."""
    if str(status) == "computed":
        return ""
    return f"{name}: not computed ({short_reason(status)})."
