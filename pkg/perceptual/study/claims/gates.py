"""Competence gates (issue 26): before a verdict compares trained methods, each must work — ℓ_pixel
and ℓ_feat against bicubic (:func:`sr_gate`), the style network against L-BFGS (:func:`style_gate`); the
thresholds of every gate, and the rule texts that state them."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from perceptual.study.claims.verdicts import Results

PIXEL_GATE_DB = 0.5  # ℓ_pixel works: PSNR ≥ bicubic − 0.5 dB on the set
FEAT_GATE_DB = 3.0  # ℓ_feat works: PSNR within 3 dB of bicubic (it trades PSNR for detail, paper §4.2) …
FEAT_GATE_SSIM = 0.9  # … and SSIM ≥ 0.9 × bicubic's
CONTENT_GATE = 3.0  # a style network keeps its content: content term ≤ 3× L-BFGS's (C5's bound for "partly")
FIDELITY_DB = 30.0  # C6: the shallowest layer's reconstruction ≥ 30 dB from the target (paper: early layers give
# reconstructions "visually indistinguishable" from the image; 30 dB is where differences become hard to see)
NOISE_SHARE = 0.5  # C7: a style reconstruction keeps ≤ half the high-band power share of its uniform-noise start

SR_GATE = (f"gate: ℓ_pixel PSNR ≥ bicubic − {PIXEL_GATE_DB:g} dB, ℓ_feat PSNR ≥ bicubic − {FEAT_GATE_DB:g} dB with "
           f"SSIM ≥ {FEAT_GATE_SSIM:g} × bicubic's, on every set × factor (else inconclusive)")
INVERSION_GATE = ("gate: every reconstruction ran until it stopped moving (over its last 50 L-BFGS iterations, the "
                  "objective < 1 % lower or the image < 0.5 grey levels RMS changed), and ")
STYLE_GATE = (f"gate: the network keeps its content — its content term ≤ {CONTENT_GATE:g}× the L-BFGS baseline's "
              "(median over the Fig. 6 images at the baseline's size and iterations; else inconclusive)")


class Gate(NamedTuple):
    """A failed competence gate: ``reason`` (short) and ``details`` (the numbers)."""
    reason: str
    details: str = ""


def sr_gate(s: pd.DataFrame) -> Gate | None:
    """Which of ℓ_pixel and ℓ_feat does not work on which set × factor of the SR table ``s``
    (standard protocol, as :func:`sr_table` gives it), or None when both work wherever evaluated."""
    if not (s.method == "bicubic").any():
        return Gate("not measured: no bicubic baseline in the SR table")
    fails: dict[str, list[str]] = {"feat": [], "pixel": []}
    checked = {"feat": 0, "pixel": 0}
    for (factor, dataset), g in s.groupby(["factor", "dataset"], sort=False):
        row = {m: r for m, r in zip(g.method, g.itertuples())}
        if "bicubic" not in row:
            continue
        b = row["bicubic"]
        if "pixel" in row:
            checked["pixel"] += 1
            if row["pixel"].psnr < b.psnr - PIXEL_GATE_DB:
                fails["pixel"].append(f"{dataset} ×{factor} {row['pixel'].psnr:.2f} dB (bicubic {b.psnr:.2f})")
        if "feat" in row:
            checked["feat"] += 1
            f = row["feat"]
            if f.psnr < b.psnr - FEAT_GATE_DB or f.ssim < FEAT_GATE_SSIM * b.ssim:
                fails["feat"].append(f"{dataset} ×{factor} {f.psnr:.2f} dB / {f.ssim:.3f} (bicubic {b.psnr:.2f} / "
                                     f"{b.ssim:.3f})")
    failed = [m for m in ("feat", "pixel") if fails[m]]
    if not failed:
        return None
    reason = ", ".join(f"ℓ_{m} does not work on {len(fails[m])} of {checked[m]} set × factor" for m in failed)
    details = "; ".join(f"ℓ_{m}: " + ", ".join(fails[m]) for m in failed)
    return Gate(f"{reason} (competence gate)",
                f"{details} ({SR_GATE.removeprefix('gate: ').split(' (else')[0]})")


def style_gate(res: Results) -> Gate | None:
    """Why the style network cannot be trusted to keep its content (or that this is not measured),
    or None when it keeps it (:data:`STYLE_GATE`), from the qualitative table's content terms."""
    q = res.table("qualitative/qualitative.csv")
    if q is None or "content_term" not in q or not (q.method == "gatys").any():
        return Gate("not measured: whether the style network keeps its content (qualitative/qualitative.csv with "
                    "content terms)")
    size = q[q.method == "gatys"]["size"].min()
    g = q[q["size"] == size].pivot_table(index=["style", "image"], columns="method", values="content_term")
    if "ours" not in g or "gatys" not in g:
        return Gate("not measured: whether the style network keeps its content (ours and the baseline at one size)")
    iters = _baseline_iterations(res)
    fails = []
    for style, r in (g.ours / g.gatys).groupby(level="style"):
        ratio = float(r.median())
        if not ratio <= CONTENT_GATE:
            fails.append(f"{style}: content term {ratio:.2f}× L-BFGS@{iters}'s at {size}² (bound {CONTENT_GATE:g}×)")
    return Gate("the style network does not keep its content (competence gate)", "; ".join(fails)) if fails else None


def _baseline_iterations(res: Results) -> str:
    cfgs = res.meta("qualitative/qualitative.csv").get("config") or {}
    its = {c.get("iterations") for c in cfgs.values() if isinstance(c, dict)} if isinstance(cfgs, dict) else set()
    return str(its.pop()) if len(its) == 1 else "N"


def _style_gate_text(res: Results) -> str:
    q = res.table("qualitative/qualitative.csv")
    if q is None or "content_term" not in q:
        return ""
    size = q[q.method == "gatys"]["size"].min()
    g = q[q["size"] == size].pivot_table(index=["style", "image"], columns="method", values="content_term")
    ratio = float((g.ours / g.gatys).median())
    return (f"Gate passed: the network's content term is {ratio:.2f}× L-BFGS@{_baseline_iterations(res)}'s at "
            f"{size}² (≤ {CONTENT_GATE:g}×)")
