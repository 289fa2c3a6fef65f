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
# the paper's claims in the book: the landing page's summary, each chapter's claims, captions

# claim → the chapter whose figures and tables show its evidence (claims.py names the paper's place)
CLAIM_CHAPTERS = {"C1": "objective", "C2": "objective", "C3": "objective", "C11": "objective", "C4": "speed",
                  "C5": "qualitative", "C6": "inversion", "C7": "inversion", "C8": "superres", "C9": "superres",
                  "C10": "superres"}
CHAPTER_TITLES = {"objective": "Fig. 5", "speed": "Table 1", "qualitative": "Figs. 6–7", "inversion": "Figs. 3–4",
                  "superres": "Figs. 8–9", "claims": "all claims"}
# what the paper reports for each claim, in a few words (its number where it prints one)
PAPER_SAYS = {
    "C1": "50–100 L-BFGS iterations at 256²", "C2": "50–100 iterations at 512² and 1024²",
    "C3": "content image's objective far above both", "C4": "1,060× vs 500 iterations at 256² (Titan X)",
    "C5": "qualitatively similar to the baseline", "C6": "structure kept; colour, texture lost with depth",
    "C7": "larger-scale structure with depth", "C8": "ℓ_pixel above ℓ_feat (numbers only in Figs. 8–9)",
    "C9": "sharper edges, finer detail with ℓ_feat", "C10": "a slight cross-hatch with ℓ_feat",
    "C11": "works at 512² and 1024² (trained at 256²)",
}
# a few words naming each claim in the one-line answer
CLAIM_TOPICS = {"C1": "objective vs L-BFGS at the training size", "C2": "objective at larger sizes",
                "C3": "content image's objective", "C4": "speed (Table 1)", "C5": "likeness to the baseline",
                "C6": "feature reconstructions", "C7": "style reconstructions", "C8": "ℓ_pixel's PSNR/SSIM lead",
                "C9": "ℓ_feat's detail", "C10": "ℓ_feat's cross-hatch", "C11": "larger sizes (Fig. 7)"}
VERDICT_ORDER = ("reproduced", "partly", "inconclusive", "not reproduced", "not tested")
_CLAIMS_CACHE: dict[tuple[str, str], Any] = {}


def claim_chapter(claim: str, where: str = "") -> str:
    """The chapter showing ``claim``'s evidence: :data:`CLAIM_CHAPTERS`, else from where the paper makes it."""
    if claim in CLAIM_CHAPTERS:
        return CLAIM_CHAPTERS[claim]
    for pattern, chapter in ((r"Fig\. ?[34]\b", "inversion"), (r"Fig\. ?5\b", "objective"), (r"Figs?\. ?[67]\b", "qualitative"),
                             (r"Table 1", "speed"), (r"Figs?\. ?[89]|§4\.2", "superres")):
        if re.search(pattern, where):
            return chapter
    return "claims"


def has_claims_box(chapter: str) -> bool:
    """Whether ``book/CHAPTER.md`` opens with :func:`chapter_claims` (its ``#claims-CHAPTER`` anchor)."""
    source = paths.book_dir() / f"{chapter}.md"
    return source.is_file() and "chapter_claims(" in source.read_text(encoding="utf-8")


def claims_table(profile: str | None = None, root: Path | None = None):
    """:func:`perceptual.study.claims.evaluate` for ``profile`` under ``root`` (default: this
    build's results folder), computed once per kernel. None when the claims cannot be evaluated."""
    from perceptual.study import claims

    root = Path(root) if root else paths.results_dir()
    key = (str(profile), str(root))
    if key not in _CLAIMS_CACHE:
        _CLAIMS_CACHE[key] = claims.evaluate(profile, root) if profile else None
    return _CLAIMS_CACHE[key]


def _reason(row) -> str:
    """Why a claim is inconclusive or untested, where the claims table says (its ``reason``)."""
    why = getattr(row, "reason", "")
    return "" if is_missing(why) or not str(why).strip() else str(why).strip()


def verdict_badge(verdict: str) -> str:
    slug = re.sub(r"[^a-z]+", "-", str(verdict).lower()).strip("-")
    return f"<span class='verdict verdict-{slug}'>{html.escape(str(verdict))}</span>"


def tally(table) -> str:
    """"7 reproduced, 1 partly, 3 not reproduced": every verdict present, in a fixed order (any
    verdict not in :data:`VERDICT_ORDER` after those). Claims shown apart (a true ``apart`` or
    false ``in_tally`` column) are left out."""
    rows = table
    for column, keep in (("apart", False), ("in_tally", True)):
        if column in rows:
            rows = rows[rows[column].astype(bool) == keep]
    counts = rows.verdict.value_counts()
    order = [v for v in VERDICT_ORDER if v in counts] + sorted(v for v in counts.index if v not in VERDICT_ORDER)
    return ", ".join(f"{counts[v]} {v}" for v in order)


def verdicts_of(ctx, *ids: str) -> str:
    """For a caption: "C1 not reproduced · C2 not reproduced" (nothing when the claims are not available)."""
    t = claims_table(ctx.profile.name)
    if t is None:
        return ""
    t = t.set_index("claim")
    return ", ".join(f"{i} ({t.verdict[i]})" for i in ids if i in t.index)


def figure_caption(ctx, label: str, ids: Iterable[str], text: str, table: Path | None = None) -> str:
    """Markdown caption "**Fig. 5.** Tests C1 (not reproduced), C2 (…). text": the claims' computed
    verdicts, or none; never a fixed word."""
    verdicts = verdicts_of(ctx, *ids)
    head = f"**{label}.**" + (f" Tests {verdicts}." if verdicts else "")
    summary = store.read_meta(table).get("summary") if table is not None else None
    return f"{head} {text}" + (f" {summary}." if summary else "")


def chapter_claims(chapter: str, ctx):
    """The box a chapter opens with: the claims whose evidence it shows, each with what was
    measured, its computed verdict and the rule that gave it (an HTML display)."""
    from IPython.display import HTML

    t = claims_table(ctx.profile.name)
    if t is None:
        return HTML("")
    rows = [r for r in t.itertuples() if claim_chapter(r.claim, r.where) == chapter]
    if not rows:
        return HTML("")
    body = "".join(
        f"<tr><td><b>{html.escape(r.claim)}</b> ({html.escape(r.where)}): {html.escape(r.paper)}"
        f"<div class='claim-rule'>Rule: {html.escape(r.rule)}</div></td>"
        f"<td>{html.escape(r.evidence)}" + (f"<div class='claim-rule'>Inconclusive because: {html.escape(_reason(r))}</div>"
                                            if _reason(r) else "") +
        f"</td><td>{verdict_badge(r.verdict)}" + ("<div class='claim-rule'>shown apart, not in the tally</div>"
                                                  if bool(getattr(r, "apart", False)) else "") + "</td></tr>" for r in rows)
    return HTML(f"<div class='people-table chapter-claims' id=\"claims-{html.escape(chapter)}\"><table class='table'><caption>The paper's claims this "
                f"chapter tests, with the verdicts computed from profile {html.escape(ctx.profile.name)}'s "
                f"results</caption><thead><tr><th>claim</th><th>measured here</th><th>verdict</th></tr></thead>"
                f"<tbody>{body}</tbody></table></div>")


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


def plot(fig, alt: str, caption_md: str = ""):
    """A matplotlib figure as an HTML image with alt text (and a caption), closed afterwards."""
    import base64
    import io

    import matplotlib.pyplot as plt
    from IPython.display import HTML

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    cap = f"<p class='figure-caption'>{_markdown_inline(caption_md)}</p>" if caption_md else ""
    return HTML(f"<div class='plot-figure'><img src='{uri}' alt='{html.escape(alt, quote=True)}'>{cap}</div>")


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


# ---------------------------------------------------------------------------------------------
# the landing page: a reproducibility report's first page


def report_profiles(profile: str) -> list[tuple[str, Path, str]]:
    """(profile, results root, label) whose claims the landing page shows: the published runs
    (the study's answer) first, then this build's profile if it is another run."""
    from perceptual.book import site

    published = paths.published_dir()
    out = [(p, published, f"{p} (published)") for p in site.published_profiles()]
    here = paths.results_dir()
    if (here / profile).is_dir() and not any(p == profile and Path(r).resolve() == here.resolve() for p, r, _ in out):
        out.append((profile, here, profile))
    return out


def _first(pattern: str, values: Iterable[str]) -> str | None:
    for v in values:
        m = re.search(pattern, v)
        if m:
            return m
    return None


def ours_short(claim: str, evidence: str) -> str:
    """A claim's measured evidence in a few words for the landing table (the chapter shows all of
    it): numbers picked out of ``evidence``; its first clause, shortened, when the pattern fails."""
    e = evidence
    try:
        if claim in ("C1", "C2"):
            found = re.findall(r"(\d+)²: network.*?\(median (≥?\d+)", e)
            if found:
                return "L-BFGS matches it at iteration " + ", ".join(f"{k} ({s}²)" for s, k in found)
        if claim == "C3":
            found = [float(x) for x in re.findall(r"content image ≥ ([\d.]+)×", e)]
            if found:
                return f"content image ≥ {min(found):.1f}× both"
        if claim == "C4":
            found = [float(x.replace(",", "")) for x in re.findall(r"([\d,]+)× vs 500", e)]
            ms = re.findall(r"(\d+)²: ([\d,]+) ms vs one L-BFGS iteration ([\d,]+) ms", e)
            if found:
                return (f"{min(found):,.0f}–{max(found):,.0f}× vs 500 iterations" +
                        (", faster than one at every size" if ms and all(float(a.replace(',', '')) < float(b.replace(',', ''))
                                                                       for _, a, b in ms) else ""))
        if claim == "C5":
            m = re.search(r"Eq\. 5 ([\d.]+)×", e)
            if m:
                return f"objective {m.group(1)}× the baseline's"
        if claim == "C6":
            found = re.findall(r"([\d.]+) dB", e)
            if len(found) >= 2:
                return f"PSNR {found[0]} → {found[-1]} dB with depth"
        if claim == "C7":
            found = re.findall(r"([\d.]+) px", e)
            if len(found) >= 2:
                return f"wavelength {found[0]} → {found[-1]} px with depth"
        if claim == "C8":
            found = re.findall(r"in (\d+) of (\d+)", e)
            if len(found) >= 2:
                return f"ℓ_pixel higher in {found[0][0]}/{found[0][1]} (PSNR), {found[1][0]}/{found[1][1]} (SSIM)"
        if claim == "C9":
            m = re.search(r"ℓ_feat ([\d.]+) vs ℓ_pixel ([\d.]+)", e)
            if m:
                return f"edge energy ℓ_feat {m.group(1)}, ℓ_pixel {m.group(2)} (truth = 1)"
        if claim == "C10":
            m = re.search(r"median ([\d.]+)×", e)
            if m:
                return f"periodic peak {m.group(1)}× ℓ_pixel's"
        if claim == "C11":
            m = re.search(r"worst larger size ([\d.]+)×", e)
            if m:
                return f"objective share {m.group(1)}× the training size's at most"
    except (ValueError, AttributeError):
        pass
    first = re.split(r";\s", e, maxsplit=1)[0]
    return first if len(first) <= 90 else first[:88].rstrip() + "…"


def _thumb_files(claim: str, folder: Path) -> list[Path]:
    """The images that say ``claim`` at a glance, if any: (before, after) pairs."""
    g = lambda pattern: sorted(folder.glob(pattern))  # noqa: E731
    pick = []
    if claim == "C5":
        gatys, ours = g("qualitative/gatys_*.png"), g("qualitative/ours_*.png")
        pick = [gatys[0], ours[0]] if gatys and ours else []
    elif claim == "C6":
        layers = g("inversion/feature_relu*.png")
        pick = [folder / "inversion/feature_target.png", layers[-1]] if layers else []
    elif claim == "C7":
        layers = g("inversion/style_relu*.png")
        pick = [layers[0], layers[-1]] if len(layers) > 1 else []
    elif claim in ("C9", "C10"):
        pixel, feat = g("superres/*_x4_pixel_hm.png"), g("superres/*_x4_feat_hm.png")
        pick = [pixel[0], feat[0]] if pixel and feat else []
    elif claim == "C11":
        big = g("qualitative/ours_*.png")
        pick = [big[-1]] if big else []
    return [p for p in pick if p.is_file()]


def _thumbnail(files: list[Path], height: int = 72, crop: bool = False) -> str:
    """A small side-by-side strip of ``files`` as a data URI ("" when there are none)."""
    from PIL import Image

    if not files:
        return ""
    tiles = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            if crop:  # the middle third: detail, not the whole picture
                w, h = im.size
                im = im.crop((w // 3, h // 3, 2 * w // 3, 2 * h // 3))
            tiles.append(im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS))
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 2 * (len(tiles) - 1), height), "white")
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width + 2
    return _image_uri(strip, lossless=True)


def landing_claims(profile: str):
    """The landing page's claims table: each claim, the paper's number, ours and the verdict per
    profile, a thumbnail where a picture says it, and a link to the chapter with its evidence."""
    from IPython.display import HTML

    runs = [(p, root, label, claims_table(p, root)) for p, root, label in report_profiles(profile)]
    runs = [r for r in runs if r[3] is not None and len(r[3])]
    if not runs:
        return HTML("<p>No claims could be evaluated: no results for this profile.</p>")
    base = runs[0][3]
    head = "".join(f"<th>ours: {html.escape(label)}</th>" for _, _, label, _ in runs)
    body = []
    for r in base.itertuples():
        chapter = claim_chapter(r.claim, r.where)
        cells = []
        for _, _, _, t in runs:
            row = t[t.claim == r.claim]
            if len(row):
                x = row.iloc[0]
                why = _reason(x)
                cells.append(f"<td>{html.escape(ours_short(r.claim, x.evidence))}<br>{verdict_badge(x.verdict)}"
                             + (f"<div class='claim-rule'>{html.escape(why)}</div>" if why else "") + "</td>")
            else:
                cells.append(f"<td>{MISSING}</td>")
        files = _thumb_files(r.claim, runs[0][1] / runs[0][0])
        thumb = _thumbnail(files, crop=r.claim in ("C9", "C10"))
        names = " and ".join(f.stem.replace("_", " ") for f in files)
        link = f"{chapter}.html" + (f"#claims-{chapter}" if has_claims_box(chapter) else "")
        pic = (f"<a href='{link}'><img class='claim-thumb' src='{thumb}' alt='{html.escape(r.claim)}: {html.escape(names)}'></a>"
               if thumb else "")
        apart = " · shown apart, not in the tally" if bool(getattr(r, "apart", False)) else ""
        body.append(f"<tr><td><a class='claim-link' href='{link}'><b>{html.escape(r.claim)}</b></a> "
                     f"{html.escape(r.paper)}<div class='claim-rule'>{html.escape(r.where)}{apart} · evidence: "
                     f"<a href='{link}'>{html.escape(CHAPTER_TITLES.get(chapter, chapter))}</a></div></td>"
                     f"<td>{html.escape(PAPER_SAYS.get(r.claim, r.where))}</td>{''.join(cells)}<td>{pic}</td></tr>")
    return HTML(f"<div class='people-table claims-summary'><table class='table'><thead><tr><th>claim</th>"
                f"<th>the paper</th>{head}<th>evidence</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
                "<p class='table-note'>Verdicts are computed from the results by each claim's stated rule "
                "(the chapter linked from each claim shows its figures, tables and rule); none is typed by hand.</p>"
                "</div>")


def answer(profile: str) -> str:
    """The one-line answer (Markdown): the tally of the study's answer and which claims held."""
    runs = [(p, root, label, claims_table(p, root)) for p, root, label in report_profiles(profile)]
    runs = [r for r in runs if r[3] is not None and len(r[3])]
    if not runs:
        return "**No answer yet:** no results to evaluate the paper's claims on."
    p, root, label, t = runs[0]
    apart = t[t["apart"].astype(bool)] if "apart" in t else t.iloc[:0]
    counted = t.drop(apart.index)
    by = {v: [CLAIM_TOPICS.get(c, c) for c in counted[counted.verdict == v].claim] for v in counted.verdict.unique()}
    parts = [f"{label}: {'; '.join(by[v])}" for v, label in (("reproduced", "Held"), ("partly", "Partly"),
                                                             ("inconclusive", "Inconclusive"),
                                                             ("not reproduced", "Not reproduced")) if by.get(v)]
    extra = "".join(f" {r.claim} ({CLAIM_TOPICS.get(r.claim, r.claim)}) is shown apart, not counted: {r.verdict}."
                    for r in apart.itertuples())
    return (f"**Answer:** on the `{p}` run ({_cost(p, root)}), of the paper's {len(counted)} claims tested, "
            f"{tally(t)}. " + ". ".join(parts) + "." + extra)


def _cost(profile: str, root: Path) -> str:
    from perceptual.study import claims

    c = claims.cost(profile, root)
    took = f"{_duration(c['seconds'])} of computation" if c.get("seconds") else "computation time not recorded"
    return f"{took} on {c.get('hardware') or 'unrecorded hardware'}"


def methodology(profile: str) -> list[str]:
    """Five lines: scope, data, loss network, compute, profiles — from the profiles and results."""
    runs = report_profiles(profile)
    p0 = profiles.get(runs[0][0]) if runs else profiles.get(profile)
    paper = profiles.PROFILES["paper"]
    data = ("images shipped with scikit-image" if p0.data == "demo" else
            f"COCO val2014 photos ({p0.content_dir}) for style transfer, {', '.join(p0.train_dirs)} for training, "
            "Set5, Set14 and BSD100 for super-resolution, the paper's style images")
    return [
        f"**Scope:** the paper's {len(claims_table(*runs[0][:2]) if runs else [])} testable claims about style "
        "transfer (Figs. 3–7, Table 1) and ×4/×8 super-resolution (Figs. 8–9), each with a rule that turns "
        "the measurement into a verdict.",
        f"**Data:** {data}.",
        f"**Loss network:** {p0.loss_network} (the paper: {paper.loss_network}, the authors' Caffe VGG-16, which "
        "cannot be had offline); every other deviation is a row of the Methods chapter's table.",
        f"**Compute:** {'; '.join(f'`{p}`: {_cost(p, r)}' for p, r, _ in runs)}.",
        f"**Profiles:** `{p0.name}` — {p0.description}. Methods lists its settings beside the paper's.",
    ]


def _safe(fn: Callable[[], str | None]) -> str | None:
    try:
        return fn()
    except Exception:  # a fact that cannot be computed from these results is left out
        return None


def easy_and_difficult(profile: str) -> tuple[list[str], list[str]]:
    """Facts for "what was easy / what was difficult", computed from the results where they can
    be (each left out when its table is absent)."""
    import pandas as pd

    from perceptual.method import transformer
    from perceptual.study import claims

    runs = report_profiles(profile)
    p, root = (runs[0][0], runs[0][1]) if runs else (profile, paths.results_dir())
    res = claims.Results(p, root)
    prof = profiles.get(p)
    paper = profiles.PROFILES["paper"]

    def params():
        n = transformer.count_parameters(transformer.StyleNet())
        return f"The networks are fully specified: our style network has {n:,} parameters, the paper's 1,679,235."

    def bicubic():
        s = claims.sr_table(res)
        b = s[(s.method == "bicubic") & (s.factor == 4)].set_index("dataset").psnr
        published = {"Set5": 28.42, "Set14": 26.00, "BSD100": 25.96}
        diff = max(abs(b[d] - v) for d, v in published.items() if d in b)
        return (f"The SR evaluation protocol is standard: our bicubic ×4 baseline is within {diff:.2f} dB of the "
                "published values on Set5, Set14 and BSD100.")

    def speed():
        sp = res.table("speed/speed.csv")
        return (f"Table 1's shape holds even on {sp.hardware.iloc[0]}: the network is faster than one L-BFGS "
                f"iteration at every size, and {sp.speedup_500.min():,.0f}× or more faster than 500.")

    def schedule():
        return (f"Compute: the paper trains each style network for {paper.style.iterations:,} iterations at "
                f"{paper.style.image_size}² on a GPU; this run afforded {prof.style.iterations:,} at "
                f"{prof.style.image_size}², and {prof.sr.iterations:,} instead of {paper.sr.iterations:,} for SR.")

    def sr_feat():
        s = claims.sr_table(res)
        x = s[s.factor == 4].pivot_table(index="dataset", columns="method", values="psnr")
        gap = (x.bicubic - x.feat).mean()
        return (f"ℓ_feat super-resolution is hard to train this short: on ×4 it scores {gap:.1f} dB below bicubic "
                "(mean over the three sets), so the SR claims rest on weak networks.")

    def weights():
        return ("The authors' Caffe VGG-16 cannot be downloaded offline; an 8-bit VGG-19 stands in, which changes "
                "every loss value, so the paper's loss weights and its '50–100 iterations' do not transfer exactly.")

    def numbers():
        return ("The paper prints its SR numbers only inside Figs. 8–9 and gives no loss weights; the authors' "
                "code (per-style λ, Gram normalisation) fills the gaps, each choice listed in Methods.")

    easy = [f for f in (_safe(params), _safe(bicubic), _safe(speed)) if f]
    hard = [f for f in (_safe(weights), _safe(schedule), _safe(sr_feat), _safe(numbers)) if f]
    del pd
    return easy, hard


def cost_table(profile: str) -> Table:
    """What each profile costs: measured where results exist, the FLOP estimate for the paper's."""
    from perceptual.study import claims

    rows, seen = [], set()
    for p, root, label in report_profiles(profile):
        c = claims.cost(p, root)
        rows.append([label, profiles.get(p).description,
                     f"{_duration(c['seconds'])} (measured)" if c.get("seconds") else MISSING,
                     str(c.get("hardware") or MISSING)])
        seen.add(p)
    try:
        from perceptual.study import estimate

        e = estimate.estimate(profiles.get("paper", gpu=True))
        rows.append(["paper", profiles.PROFILES["paper"].description,
                     f"≈ {e.hours(1):.0f} h, ≈ {e.hours(8):.0f} h on 8 GPUs (estimated from FLOPs)",
                     "GTX Titan X, the paper's GPU"])
    except Exception:  # the estimate needs torch's FLOP counter; the table stands without it
        pass
    if "demo" not in seen:
        rows.append(["demo", profiles.PROFILES["demo"].description, "≈ 5 min (after setup)", "any 2-core CPU"])
    return Table(["profile", "what it is", "time", "hardware"], rows,
                 ["Measured: the wall time of the run's computations, from its tables' records."])


def rerun_line(profile: str) -> str:
    """How to rerun, in one line (Markdown)."""
    return (f"**Rerun:** `make reproduce PROFILE={profile} DATA_ROOT=../shared/data` recomputes this answer "
            "(`make compare PROFILE=cpu` checks it against the published numbers); `make book` renders the "
            "published results as they are.")


# ---------------------------------------------------------------------------------------------
# the Speed chapter: Table 1 as printed, ours, real time, and why two timings differ

PAPER_TABLE1_SPEEDUPS = {256: ("212×", "636×", "1060×"), 512: ("205×", "615×", "1026×"),
                         1024: ("208×", "625×", "1042×")}  # as printed in Table 1 (not recomputed)
PAPER_FPS_512 = 20  # §4.1: "Our method processes images of size 512×512 at 20 FPS"


def paper_table1() -> Table:
    """Table 1 exactly as the paper prints it (GTX Titan X; seconds; speed-ups as printed)."""
    from perceptual.study.bench import PAPER_TABLE1

    rows = [[f"{s}×{s}", *(f"{PAPER_TABLE1[s][k]:g}" for k in ("gatys_100", "gatys_300", "gatys_500", "feedforward")),
             " · ".join(PAPER_TABLE1_SPEEDUPS[s])] for s in sorted(PAPER_TABLE1)]
    return Table(["image size", "Gatys et al. 100 it. (s)", "300 it. (s)", "500 it. (s)", "ours (s)",
                  "speed-up vs 100 · 300 · 500 it."], rows,
                 ["Copied as printed in the paper's Table 1 (GTX Titan X): the speed-ups are the paper's own, not "
                  "recomputed from the rounded times."], caption="Table 1 as the paper prints it")


def our_table1(df) -> Table:
    """Table 1's columns measured by this build (``speed.csv``)."""
    rows = [[f"{int(r.size)}×{int(r.size)}", number(r.gatys_100), number(r.gatys_300), number(r.gatys_500),
             number(r.feedforward), " · ".join(f"{v:,.0f}×" for v in (r.speedup_100, r.speedup_300, r.speedup_500))]
            for r in df.itertuples()]
    return Table(["image size", "Gatys et al. 100 it. (s)", "300 it. (s)", "500 it. (s)", "ours (s)",
                  "speed-up vs 100 · 300 · 500 it."], rows,
                 [f"Measured on {df.hardware.iloc[0]}. The baseline's time is one L-BFGS iteration (the median "
                  "of the timed ones) times 100, 300 and 500; ours is the network's inference path in float32."],
                 caption="Table 1 measured by this build")


def _fps(seconds: float) -> str:
    return MISSING if is_missing(seconds) or not seconds else f"{1 / seconds:,.3g} FPS ({number(seconds)} s)"


def realtime(speed_df, bench_path: Path | None = None) -> Table:
    """The paper's real-time claim (20 FPS at 512²; Table 1's 0.015 s at 256²) beside this build's
    frame rates: Table 1's timing, the benchmark's fastest path, and any published GPU benchmark."""
    import pandas as pd

    from perceptual.study.bench import PAPER_TABLE1

    sizes = [s for s in (256, 512) if s in set(speed_df["size"])]
    columns = {"paper (GTX Titan X)": {256: _fps(PAPER_TABLE1[256]["feedforward"]),
                                       512: f"{PAPER_FPS_512} FPS (§4.1; Table 1: {number(PAPER_TABLE1[512]['feedforward'])} s)"}}
    hw = speed_df.hardware.iloc[0]
    columns[f"this build, Table 1 ({hw})"] = {s: _fps(float(speed_df[speed_df["size"] == s].feedforward.iloc[0]))
                                              for s in sizes}
    benches = [(bench_path, "this build's benchmark")] if bench_path and Path(bench_path).is_file() else []
    folder = paths.published_benchmarks_dir()
    gpu = sorted(f for f in folder.glob("*.csv") if "cuda" in pd.read_csv(f, nrows=1).device.iloc[0]) \
        if folder.is_dir() else []
    if gpu:
        benches.append((gpu[-1], "published GPU benchmark"))
    for path, what in benches:
        b = pd.read_csv(path)
        inf = b[(b.kind == "inference") & ~b.variant.str.startswith("eager")]
        if not len(inf):
            continue
        best = {s: inf[inf["size"] == s].sort_values("seconds").iloc[0] for s in sizes if (inf["size"] == s).any()}
        columns[f"{what}, fastest path ({b.hardware.iloc[0]})"] = {
            s: f"{_fps(r.seconds)}, {r.variant}" for s, r in best.items()}
    rows = [[f"{s}×{s}", *(c.get(s, MISSING) for c in columns.values())] for s in sizes]
    return Table(["image size", *columns], rows,
                 [f"Real time, as the paper means it: ≥ {PAPER_FPS_512} frames per second, ≤ "
                  f"{1 / PAPER_FPS_512:g} s per frame. The fastest path may run in reduced precision (its PSNR "
                  "against float32 is in the appendix)."], caption="Frames per second: the paper's real-time claim")


def two_timings(speed_path: Path, bench_path: Path) -> str:
    """Why Table 1 and the benchmark time the same network differently: both runs' facts from
    their records (Markdown), or "" when one is missing."""
    import pandas as pd

    if not (Path(speed_path).is_file() and Path(bench_path).is_file()):
        return ""
    sp, b = pd.read_csv(speed_path), pd.read_csv(bench_path)
    ms, mb = store.read_meta(speed_path), store.read_meta(bench_path)
    size = 256 if (sp["size"] == 256).any() else int(sp["size"].iloc[0])
    eager_t1 = float(sp[sp["size"] == size].feedforward_eager.iloc[0])
    fast_t1 = float(sp[sp["size"] == size].feedforward.iloc[0])
    rows = b[(b.kind == "inference") & (b["size"] == size)].set_index("variant").seconds
    if "eager-fp32" not in rows or "fast-fp32" not in rows:
        return ""
    when = lambda m: str(m.get("created", "?"))[:16].replace("T", " ")  # noqa: E731
    repeats = re.search(r"(\d+) repeats", ms.get("summary", ""))
    return (f"**Two timings of one network.** At {size}² Table 1 times the network as trained at "
            f"{number(eager_t1)} s and its inference path at {number(fast_t1)} s; the benchmark times the same "
            f"network at {number(rows['eager-fp32'])} s and {number(rows['fast-fp32'])} s. They are two runs: "
            f"Table 1 ran inside the study's run ({when(ms)}, code {version(ms.get('code_version'))}, median of "
            f"{repeats.group(1) if repeats else 'a few'} calls after one warm-up, on random-noise images, between "
            f"the run's other steps), the benchmark alone later ({when(mb)}, code {version(mb.get('code_version'))}, "
            "median of 5, on photographs). The code changed in between (the inference path and instance norm were "
            "made faster), and the 2-core machine is shared, so absolute times move between runs; each run's "
            "ratios (Table 1's speed-ups, the benchmark's fast / eager) are measured within one run and are "
            "what to compare. Which of these causes accounts for how much was not isolated.")


# ---------------------------------------------------------------------------------------------
# the super-resolution chapter

SR_ORDER = ("bicubic", "srcnn-published", "srcnn", "pixel", "feat")
SR_NAMES = {"bicubic": "bicubic", "srcnn-published": "SRCNN (published)", "srcnn": "SRCNN (retrained)",
            "pixel": "ℓ_pixel", "feat": "ℓ_feat"}
# the SR literature's bicubic baselines (Y, border = factor): SRCNN, VDSR, EDSR tables
PUBLISHED_BICUBIC = {("Set5", 4): 28.42, ("Set14", 4): 26.00, ("BSD100", 4): 25.96, ("Set5", 8): 24.39,
                     ("Set14", 8): 23.10, ("BSD100", 8): 23.66}


def model_note(note: str) -> str:
    """A model's provenance note without a raw download error."""
    if "(fallback:" in note:
        return note.split(" (fallback:")[0] + " (the published SRCNN weights were not available offline)"
    return note


def sr_metric_table(summary, metric: str, protocol: str, unit: str = "", fmt: str = ".2f",
                    caption: str = "", notes: Iterable[str] = ()) -> Table:
    """One metric of the SR summary, transposed to fit the column: a row per method (as is and
    histogram-matched), a column per set × factor."""
    part = summary[summary.protocol == protocol] if "protocol" in summary else summary
    part = part.assign(variant=[SR_NAMES.get(m, m) + (" (matched)" if bool(hm) else "")
                                for m, hm in zip(part.method, part.matched if "matched" in part else [False] * len(part))])
    values = pd_numeric(part[metric])
    part = part.assign(value=values)
    cols = [(d, f) for f in sorted(part.factor.unique()) for d in ("Set5", "Set14", "BSD100") if
            ((part.dataset == d) & (part.factor == f)).any()]
    order = [SR_NAMES.get(m, m) + v for m in SR_ORDER for v in ("", " (matched)")]
    order += [v for v in dict.fromkeys(part.variant) if v not in order]
    rows = []
    for v in order:
        sel = part[part.variant == v]
        if not len(sel):
            continue
        cell = lambda d, f: sel[(sel.dataset == d) & (sel.factor == f)].value  # noqa: E731
        rows.append([v] + [format(float(cell(d, f).iloc[0]), fmt) if len(cell(d, f)) and not is_missing(
            float(cell(d, f).iloc[0])) else MISSING for d, f in cols])
    notes = list(notes)
    if any(MISSING in r for r in rows):
        notes.insert(0, f"{MISSING} not evaluated (SRCNN is ×4 only, as in the paper).")
    return Table(["method"] + [f"{d} ×{f}{unit}" for d, f in cols], rows, notes, caption)


def pd_numeric(series):
    import pandas as pd

    return pd.to_numeric(series, errors="coerce")


def published_bicubic(summary) -> Table:
    """Our bicubic PSNR under the standard protocol beside the SR literature's published values."""
    s = summary[(summary.protocol == "standard") & (summary.method == "bicubic")] if "protocol" in summary else \
        summary[summary.method == "bicubic"]
    rows = []
    for (d, f), v in PUBLISHED_BICUBIC.items():
        ours = s[(s.dataset == d) & (s.factor == f)].psnr
        if len(ours):
            rows.append([d, f"×{f}", f"{v:.2f}", f"{float(ours.iloc[0]):.2f}", f"{float(ours.iloc[0]) - v:+.2f}"])
    return Table(["dataset", "factor", "published (dB)", "ours (dB)", "difference (dB)"], rows,
                 ["Published: the bicubic rows of the SRCNN, VDSR and EDSR tables (Y, border = factor); Set14 varies "
                  "by ±0.1 dB between papers with the image versions used."],
                 caption="Bicubic PSNR under the standard protocol vs. the published baselines")
