"""The paper's claims, tested: evidence computed from ``results/<profile>/`` and a verdict by a
stated rule (never typed). The Claims chapter prints :func:`evaluate`'s table.

Each claim is a row of :data:`CLAIMS` (id, where in the paper, the paper's statement, the rule)
and a function of the results that returns (evidence text, verdict). Verdicts:
``reproduced``, ``partly``, ``not reproduced``, or ``not tested`` when the profile did not
compute what the claim needs. :data:`TARGETS` are the CPU profile's own goals (issue 14).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from perceptual.evaluation import detail, metrics
from perceptual.core import paths, store

REPRODUCED, PARTLY, NOT, UNTESTED = "reproduced", "partly", "not reproduced", "not tested"


@dataclass(frozen=True)
class Claim:
    id: str
    where: str
    statement: str
    rule: str
    test: Callable[["Results"], tuple[str, str]]


class Results:
    """Read access to one profile's results folder (missing tables → None)."""

    def __init__(self, profile: str, root: Path | None = None):
        self.profile = profile
        self.dir = (root or paths.results_dir()) / profile

    def table(self, rel: str) -> pd.DataFrame | None:
        path = self.dir / rel
        return pd.read_csv(path) if path.is_file() else None

    def meta(self, rel: str) -> dict:
        path = self.dir / rel
        return store.read_meta(path) if path.is_file() else {}

    def image(self, rel: str) -> np.ndarray | None:
        from PIL import Image

        path = self.dir / rel
        if not path.is_file():
            return None
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Fig. 5: the network's objective in L-BFGS iterations


def lbfgs_equivalent(obj: pd.DataFrame) -> pd.DataFrame:
    """Per size and image: the network's and the content image's Eq. 5, L-BFGS at 50 and 100
    iterations (or the last), and the iterations L-BFGS needs to reach the network's value
    (``inf`` when it never does within the run)."""
    rows = []
    for (size, image), g in obj.groupby(["size", "image"]):
        curve = g[g.method == "gatys"].sort_values("iteration")
        net = float(g[g.method == "feedforward"].objective.iloc[0])
        content = float(g[g.method == "content"].objective.iloc[0])
        reached = curve[curve.objective <= net]
        last = int(curve.iteration.max())
        at = lambda n: float(curve[curve.iteration == min(n, last)].objective.iloc[0])  # noqa: E731
        rows.append({"size": int(size), "image": image, "network": net, "content": content,
                     "lbfgs_50": at(50), "lbfgs_100": at(100), "lbfgs_last": at(last), "iterations_run": last,
                     "matched_at": float(reached.iteration.iloc[0]) if len(reached) else float("inf")})
    return pd.DataFrame(rows)


def _iterations(k: float, run: int) -> str:
    """L-BFGS iterations to match the network: ``≥ run`` when it never did within the run."""
    return f"≥{int(run)}" if np.isinf(k) else str(int(k))


def _matched_verdict(k: float) -> str:
    return REPRODUCED if k >= 50 else PARTLY if k >= 25 else NOT


def fig5(res: Results) -> pd.DataFrame | None:
    obj = res.table("objective/objective.csv")
    return None if obj is None else lbfgs_equivalent(obj)


def _train_size(res: Results) -> int | None:
    cfg = res.meta("objective/objective.csv").get("summary", "")
    import re

    m = re.search(r"at (\d+)²", cfg)
    return int(m.group(1)) if m else None


def _c1(res: Results, larger: bool = False) -> tuple[str, str]:
    eq = fig5(res)
    size = _train_size(res)
    if eq is None or size is None:
        return "objective/objective.csv not computed", UNTESTED
    sizes = sorted(s for s in eq["size"].unique() if (s > size if larger else s == size))
    if not sizes:
        return f"no Fig. 5 size {'above' if larger else 'at'} the training size {size}²", UNTESTED
    parts, verdicts = [], []
    for s in sizes:
        g = eq[eq["size"] == s]
        k = float(g.matched_at.median())
        verdicts.append(_matched_verdict(k))
        ks = ", ".join(_iterations(r.matched_at, r.iterations_run) for r in g.itertuples())
        parts.append(f"{s}²: network {g.network.median():.3g} vs L-BFGS@50 {g.lbfgs_50.median():.3g}, "
                     f"@100 {g.lbfgs_100.median():.3g}; L-BFGS matches the network at iteration {ks} "
                     f"(median {_iterations(k, g.iterations_run.max())}, {len(g)} images)")
    order = [REPRODUCED, PARTLY, NOT]
    return "; ".join(parts), max(verdicts, key=order.index)


def _c3(res: Results) -> tuple[str, str]:
    eq = fig5(res)
    if eq is None:
        return "objective/objective.csv not computed", UNTESTED
    ratios = eq.content / np.maximum(eq.network, eq.lbfgs_last)
    per = eq.assign(r=ratios).groupby("size").r.min()
    text = "; ".join(f"{s}²: content image ≥ {r:.1f}× both" for s, r in per.items())
    return text, REPRODUCED if ratios.min() >= 3 else PARTLY if ratios.min() >= 1.5 else NOT


def _c11(res: Results) -> tuple[str, str]:
    eq = fig5(res)
    size = _train_size(res)
    if eq is None or size is None:
        return "objective/objective.csv not computed", UNTESTED
    rel = (eq.network / eq.content).groupby(eq["size"]).median()  # the network's share of the content image's value
    if size not in rel.index or len(rel) < 2:
        return "Fig. 5 not computed at the training size and a larger one", UNTESTED
    worst = max(rel[s] / rel[size] for s in rel.index if s > size)
    text = ", ".join(f"{s}²: {rel[s]:.2f}" for s in rel.index) + \
        f" (network objective / content image's; worst larger size {worst:.2f}× the training size's)"
    return text, REPRODUCED if worst <= 1.5 else PARTLY if worst <= 3 else NOT


# ---------------------------------------------------------------------------------------------
# Table 1


def _c4(res: Results) -> tuple[str, str]:
    sp = res.table("speed/speed.csv")
    if sp is None:
        return "speed/speed.csv not computed", UNTESTED
    hw = sp.hardware.iloc[0] if "hardware" in sp else "?"
    faster = (sp.feedforward < sp.gatys_per_iteration).all()
    k500 = sp.speedup_500.min()
    text = "; ".join(f"{int(r.size)}²: {r.feedforward * 1000:.0f} ms vs one L-BFGS iteration "
                     f"{r.gatys_per_iteration * 1000:.0f} ms, {r.speedup_500:.0f}× vs 500" for r in sp.itertuples())
    return f"{text} ({hw})", REPRODUCED if faster and k500 >= 1000 else PARTLY if faster or k500 >= 1000 else NOT


# ---------------------------------------------------------------------------------------------
# Fig. 6


def _c5(res: Results) -> tuple[str, str]:
    q = res.table("qualitative/qualitative.csv")
    if q is None or "content_term" not in q:
        return "qualitative/qualitative.csv (with content and style terms) not computed", UNTESTED
    size = q[q.method == "gatys"]["size"].min()
    g = q[q["size"] == size].pivot_table(index=["style", "image"], columns="method",
                                         values=["objective", "content_term", "style_term"])
    ratio = {t: float((g[f"{t}_term" if t != "objective" else t]["ours"] /
                       g[f"{t}_term" if t != "objective" else t]["gatys"]).median())
             for t in ("objective", "content", "style")}
    text = (f"{size}², ours / baseline (median over {len(g)} images): Eq. 5 {ratio['objective']:.2f}×, "
            f"content {ratio['content']:.2f}×, style {ratio['style']:.2f}×")
    near = lambda r, k: 1 / k <= r <= k  # noqa: E731
    if ratio["objective"] <= 1.5 and near(ratio["content"], 2) and near(ratio["style"], 2):
        return text, REPRODUCED
    return text, PARTLY if ratio["objective"] <= 3 else NOT


# ---------------------------------------------------------------------------------------------
# Figs. 3 and 4


def _layers(res: Results, figure: str) -> list[str]:
    inv = res.table("inversion/inversion.csv")
    return [] if inv is None else list(dict.fromkeys(inv[inv.figure == figure].layer))


def inversion_measures(res: Results) -> pd.DataFrame | None:
    """Per layer: feature reconstructions' PSNR and colour-histogram distance to the target,
    style reconstructions' dominant wavelength (px)."""
    target = res.image("inversion/feature_target.png")
    if target is None:
        return None
    rows = []
    for layer in _layers(res, "fig3"):
        img = res.image(f"inversion/feature_{layer}.png")
        rows.append({"figure": "fig3", "layer": layer, "psnr": metrics.psnr_rgb(target, img),
                     "colour_distance": detail.colour_histogram_distance(img, target)})
    for layer in _layers(res, "fig4"):
        img = res.image(f"inversion/style_{layer}.png")
        rows.append({"figure": "fig4", "layer": layer, "wavelength": detail.dominant_wavelength(img)})
    return pd.DataFrame(rows)


def _c6(res: Results) -> tuple[str, str]:
    m = inversion_measures(res)
    if m is None or not len(m[m.figure == "fig3"]):
        return "inversion not computed", UNTESTED
    f = m[m.figure == "fig3"].reset_index(drop=True)
    depth = list(range(len(f)))
    rho_psnr, rho_col = detail.spearman(depth, f.psnr), detail.spearman(depth, f.colour_distance)
    text = (", ".join(f"{r.layer} {r.psnr:.1f} dB / {r.colour_distance:.2f}" for r in f.itertuples()) +
            f" (PSNR / colour distance to the target; Spearman ρ with depth {rho_psnr:.2f} / {rho_col:.2f})")
    ok = [rho_psnr <= -0.8, rho_col >= 0.8]
    return text, REPRODUCED if all(ok) else PARTLY if any(ok) else NOT


def _c7(res: Results) -> tuple[str, str]:
    m = inversion_measures(res)
    if m is None or not len(m[m.figure == "fig4"]):
        return "inversion not computed", UNTESTED
    f = m[m.figure == "fig4"].reset_index(drop=True)
    rho = detail.spearman(range(len(f)), f.wavelength)
    text = ", ".join(f"{r.layer} {r.wavelength:.1f} px" for r in f.itertuples()) + \
        f" (power-weighted mean wavelength; Spearman ρ with depth {rho:.2f})"
    return text, REPRODUCED if rho >= 0.8 else PARTLY if rho > 0 else NOT


# ---------------------------------------------------------------------------------------------
# Figs. 8 and 9


def sr_table(res: Results) -> pd.DataFrame | None:
    """The SR summary under the standard protocol (where the table has protocols), network
    outputs histogram-matched as the paper's were (where the table has both)."""
    s = res.table("superres/sr_summary.csv")
    if s is None:
        return None
    if "protocol" in s:
        s = s[s.protocol == "standard"]
    if "matched" in s:
        s = s[(s.method == "bicubic") | s.matched.astype(bool)]
    return s


def _sr_pair(s: pd.DataFrame, metric: str, a: str, b: str) -> pd.DataFrame:
    p = s.pivot_table(index=["factor", "dataset"], columns="method", values=metric)
    return p[[a, b]].dropna() if a in p and b in p else pd.DataFrame()


def _c8(res: Results) -> tuple[str, str]:
    s = sr_table(res)
    if s is None:
        return "superres/sr_summary.csv not computed", UNTESTED
    wins, total, parts = 0, 0, []
    for metric in ("psnr", "ssim"):
        p = _sr_pair(s, metric, "pixel", "feat")
        wins += int((p.pixel > p.feat).sum())
        total += len(p)
        parts.append(f"{metric.upper()}: ℓ_pixel above ℓ_feat in {int((p.pixel > p.feat).sum())} of {len(p)} set×factor "
                     f"(mean margin {(p.pixel - p.feat).mean():+.3g})")
    if not total:
        return "ℓ_pixel and ℓ_feat not both evaluated", UNTESTED
    return "; ".join(parts), REPRODUCED if wins == total else PARTLY if wins >= total / 2 else NOT


def _detail(res: Results, column: str, what: str) -> tuple[pd.DataFrame | None, pd.DataFrame | str]:
    """(the SR table, ℓ_pixel vs ℓ_feat of ``column``) or (None, why it cannot be tested)."""
    s = sr_table(res)
    if s is None or column not in s:
        return None, f"{what} not computed"
    p = _sr_pair(s, column, "pixel", "feat")
    return (s, p) if len(p) else (None, "ℓ_pixel and ℓ_feat not both evaluated")


def _c9(res: Results) -> tuple[str, str]:
    s, p = _detail(res, "grad_ratio", "detail measures")
    if s is None:
        return p, UNTESTED
    more = int((p.feat > p.pixel).sum())
    text = (f"gradient energy / ground truth's: ℓ_feat {p.feat.mean():.2f} vs ℓ_pixel {p.pixel.mean():.2f} "
            f"(mean over set×factor; ℓ_feat higher in {more} of {len(p)})")
    numeric = "lpips" in s and pd.to_numeric(s["lpips"], errors="coerce").notna().all()  # else: the reason
    lp = _sr_pair(s, "lpips", "pixel", "feat") if numeric else pd.DataFrame()
    if len(lp):
        text += f"; LPIPS ℓ_feat {lp.feat.mean():.3f} vs ℓ_pixel {lp.pixel.mean():.3f}"
    return text, REPRODUCED if more == len(p) else PARTLY if more >= len(p) / 2 else NOT


def _c10(res: Results) -> tuple[str, str]:
    s, p = _detail(res, "hatch_peak", "residual spectra")
    if s is None:
        return p, UNTESTED
    ratio = float((p.feat / p.pixel).median())
    text = (f"strongest periodic peak of the residual spectrum, ℓ_feat / ℓ_pixel: median {ratio:.2f}× over "
            f"{len(p)} set×factor")
    return text, REPRODUCED if ratio >= 2 else PARTLY if ratio >= 1.2 else NOT


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "Fig. 5, §5.1", "The network's Eq. 5 objective equals that of 50–100 L-BFGS iterations at the "
          "training size.", "L-BFGS needs ≥ 50 iterations to reach the network's value (median over images): "
          "reproduced; 25–49: partly; < 25: not reproduced", lambda r: _c1(r)),
    Claim("C2", "Fig. 5", "The same holds at larger sizes (the paper: 512², 1024²).",
          "as C1, at every Fig. 5 size above the training size (the worst size decides)", lambda r: _c1(r, True)),
    Claim("C3", "Fig. 5", "The content image's objective is far higher than both.",
          "content image ≥ 3× max(network, L-BFGS at its last iteration) for every image and size: reproduced; "
          "≥ 1.5×: partly", _c3),
    Claim("C4", "Table 1", "Feed-forward is faster than one L-BFGS iteration and ≥ 1000× faster than 500.",
          "both at every size: reproduced; one of the two: partly", _c4),
    Claim("C5", "Fig. 6", "Outputs are similar to the baseline's at the same λ.",
          "ours/baseline Eq. 5 ≤ 1.5 and content and style terms each within 2×: reproduced; Eq. 5 ≤ 3×: partly",
          _c5),
    Claim("C6", "Fig. 3", "Reconstructions from higher layers keep structure but lose colour and fine detail.",
          "PSNR falls with depth (Spearman ρ ≤ −0.8) and colour distance rises (ρ ≥ 0.8): reproduced; one: partly",
          _c6),
    Claim("C7", "Fig. 4", "Style reconstructions from higher layers carry larger-scale structure.",
          "dominant wavelength rises with depth, ρ ≥ 0.8: reproduced; ρ > 0: partly", _c7),
    Claim("C8", "§4.2, Figs. 8–9", "ℓ_pixel beats ℓ_feat in PSNR and SSIM.",
          "ℓ_pixel above ℓ_feat in every set × factor × metric (standard protocol): reproduced; in half: partly",
          _c8),
    Claim("C9", "§4.2, Fig. 8", "ℓ_feat reconstructs more fine detail (sharper edges).",
          "ℓ_feat's gradient energy (relative to the truth) above ℓ_pixel's in every set × factor: reproduced; "
          "in half: partly", _c9),
    Claim("C10", "§4.2", "ℓ_feat shows a faint cross-hatch pattern.",
          "residual spectrum's periodic peak ℓ_feat/ℓ_pixel ≥ 2 (median): reproduced; ≥ 1.2: partly", _c10),
    Claim("C11", "§5.1, Fig. 7", "Networks trained at one size work at larger sizes.",
          "network/content-image objective ratio at larger sizes ≤ 1.5× that at the training size: reproduced; "
          "≤ 3×: partly", _c11),
)


def evaluate(profile: str, root: Path | None = None) -> pd.DataFrame:
    """One row per claim: id, where, statement, evidence, verdict, rule."""
    res = Results(profile, root)
    rows = []
    for c in CLAIMS:
        try:
            evidence, verdict = c.test(res)
        except (KeyError, ValueError, IndexError, TypeError) as err:  # a table of an unexpected shape
            evidence, verdict = f"could not be evaluated: {type(err).__name__}: {err}", UNTESTED
        rows.append({"claim": c.id, "where": c.where, "paper": c.statement, "evidence": evidence,
                     "verdict": verdict, "rule": c.rule})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# the CPU profile's targets (issue 14), measured


def targets(profile: str, root: Path | None = None) -> pd.DataFrame:
    res = Results(profile, root)
    rows = []
    eq, size = fig5(res), _train_size(res)
    g = eq[eq["size"] == size] if eq is not None and size is not None else None
    if g is not None and len(g):  # Fig. 5 measured at the training size
        k = float(g.matched_at.median())
        rows.append({"target": f"C1: network ≤ L-BFGS@100 at {size}² (stretch ≤ @50)",
                     "measured": f"L-BFGS matches the network at iteration {_iterations(k, g.iterations_run.max())} (median)",
                     "met": "yes" if k >= 100 else "only ≤ L-BFGS@50" if k >= 50 else "no"})
    sp = res.table("speed/speed.csv")
    if sp is not None:
        rows.append({"target": "C4: ≥ 1000× vs 500 iterations at every size",
                     "measured": ", ".join(f"{int(r.size)}²: {r.speedup_500:.0f}×" for r in sp.itertuples()),
                     "met": "yes" if sp.speedup_500.min() >= 1000 else "no"})
    s = sr_table(res)
    if s is not None:
        p = _sr_pair(s, "psnr", "pixel", "bicubic")
        x4 = p.loc[4] if 4 in p.index.get_level_values(0) else pd.DataFrame()
        if len(x4):
            rows.append({"target": "×4 ℓ_pixel ≥ bicubic PSNR on Set5, Set14, BSD100 (standard protocol)",
                         "measured": ", ".join(f"{d}: {r.pixel:.2f} vs {r.bicubic:.2f} dB" for d, r in x4.iterrows()),
                         "met": "yes" if (x4.pixel >= x4.bicubic).all() else "no"})
    c8 = _c8(res)
    rows.append({"target": "C8 holds", "measured": c8[0], "met": "yes" if c8[1] == REPRODUCED else "no"})
    return pd.DataFrame(rows)


def cost(profile: str, root: Path | None = None) -> dict:
    """Wall time of the run's computations and the hardware, from the results."""
    res = Results(profile, root)
    times = res.dir / "step_times.json"  # training and steps timed by a driver, if any
    steps = json.loads(times.read_text()) if times.is_file() else {}
    seconds = sum(steps.values())
    for chapter, rel in (("objective", "objective/objective.csv"), ("inversion", "inversion/inversion.csv"),
                         ("qualitative", "qualitative/qualitative.csv"), ("speed", "speed/speed.csv"),
                         ("superres", "superres/sr_per_image.csv")):
        if chapter not in steps:  # computed by `make reproduce`: the table's meta has its run time
            seconds += res.meta(rel).get("compute_seconds", 0)
    seconds = seconds or None
    hw = {}
    for rel in ("objective/objective.csv", "superres/sr_summary.csv", "speed/speed.csv"):
        hw = res.meta(rel).get("hardware") or hw
        if hw:
            break
    return {"seconds": seconds, "hardware": store.machine_label(hw)}
