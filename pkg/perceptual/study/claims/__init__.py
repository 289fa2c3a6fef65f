"""The paper's claims, tested: evidence computed from ``results/<profile>/`` and a verdict by a
stated rule (never typed). The Claims chapter prints :func:`evaluate`'s table.

Each claim is a row of :data:`CLAIMS` (id, where in the paper, the paper's statement, the rule)
and a function of the results that returns an :class:`Outcome` (evidence text, verdict, and the
reason when the verdict is not a judgement). Verdicts (:data:`VERDICTS`, the tally's order):
``reproduced``, ``partly``, ``not reproduced``; ``inconclusive`` when what the verdict needs
cannot be trusted or was not measured (a method that does not work, a missing calibration) —
never ``reproduced`` on broken evidence; ``not tested`` when the profile did not compute what
the claim needs. A claim marked ``apart`` (C11) is an extra criterion of this study, shown apart
and left out of the headline tally. :data:`TARGETS` are the CPU profile's own goals (issue 14).

The rules live by the evidence they read — :mod:`~perceptual.study.claims.style` (C1–C5, C11),
:mod:`~perceptual.study.claims.inversion` (C6, C7), :mod:`~perceptual.study.claims.superres` (C8–C10)
— on :mod:`~perceptual.study.claims.verdicts` (verdicts, outcomes, results) and
:mod:`~perceptual.study.claims.gates`. This module holds the table of claims and its readers.

Competence gates (issue 26): a verdict that compares trained methods first checks that each
works — :func:`sr_gate` (ℓ_pixel, ℓ_feat against bicubic) and :func:`style_gate` (the style
network keeps its content, against L-BFGS's) — and is ``inconclusive``, with the reason, where
one does not.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from perceptual.core import store
from perceptual.study.claims.gates import (CONTENT_GATE, FEAT_GATE_DB, FEAT_GATE_SSIM, FIDELITY_DB, INVERSION_GATE,
                                           NOISE_SHARE, PIXEL_GATE_DB, SR_GATE, STYLE_GATE, Gate, sr_gate, style_gate)
from perceptual.study.claims.inversion import _c6, _c7, inversion_measures
from perceptual.study.claims.style import (AUTHORS_START, START_NAMES, UNIFORM_START, _c1, _c3, _c4, _c5, _c11,
                                           _train_size, calibration, fig5, fig5_starts, lbfgs_equivalent,
                                           vgg16_cost_factor)
from perceptual.study.claims.superres import HATCH_SLIGHT, HF_CORR_TOLERANCE, _c8, _c9, _c10, _sr_pair, sr_table
from perceptual.study.claims.verdicts import (INCONCLUSIVE, NOT, PARTLY, REPRODUCED, UNTESTED, VERDICTS, Claim,
                                              Outcome, Results, iterations_text)

__all__ = [  # the package's API: the claims and their readers, and what the book and tests use of the parts
    "CLAIMS", "evaluate", "tally", "targets", "cost",
    "REPRODUCED", "PARTLY", "NOT", "INCONCLUSIVE", "UNTESTED", "VERDICTS", "Claim", "Outcome", "Results",
    "iterations_text", "Gate", "sr_gate", "style_gate", "PIXEL_GATE_DB", "FEAT_GATE_DB", "FEAT_GATE_SSIM",
    "CONTENT_GATE", "FIDELITY_DB", "NOISE_SHARE", "SR_GATE", "STYLE_GATE", "INVERSION_GATE",
    "AUTHORS_START", "UNIFORM_START", "START_NAMES", "lbfgs_equivalent", "fig5", "fig5_starts", "calibration",
    "vgg16_cost_factor", "inversion_measures", "sr_table", "HF_CORR_TOLERANCE", "HATCH_SLIGHT", "_train_size",
]

CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "Fig. 5, §4.1", "The network's Eq. 5 objective equals that of 50–100 L-BFGS iterations at the "
          "training size.",
          f"{STYLE_GATE}. Paper rule: L-BFGS needs ≥ 50 iterations to reach the network's value (median over images, "
          "from the authors' start): reproduced; 25–49: partly; < 25: not reproduced. Calibration rule: L-BFGS from "
          "the same start needs at least as many iterations to match ours as to match the authors' released network "
          "on the same images at the same size (medians): reproduced; at least half: partly; else not reproduced. "
          "The calibration rule decides (the iterations depend on the loss network, λ and start; the paper's 50–100 "
          "was VGG-16 and its λ); not measured: inconclusive", lambda r: _c1(r)),
    Claim("C2", "Fig. 5, §4.1", "The same holds at larger sizes (the paper: 512², 1024²).",
          "as C1, at every Fig. 5 and calibration size above the training size (the worst size decides)",
          lambda r: _c1(r, True)),
    Claim("C3", "Fig. 5, §4.1", "The content image's objective is far higher than both.",
          f"{STYLE_GATE}. Content image ≥ 3× max(network, L-BFGS at its last iteration) for every image and size: "
          "reproduced; ≥ 1.5×: partly", _c3),
    Claim("C4", "Table 1, §4.1", "Feed-forward is faster than one L-BFGS iteration and ≥ 1000× faster than 500.",
          "one measurement per size: the network's time against one L-BFGS iteration's measured time, and 500 "
          "iterations as 500 × that time (not a timed 500-iteration run); with VGG-19 the iteration time is scaled "
          "to VGG-16's by the two passes' multiply-adds (VGG-19's extra conv3_4, ≈ 13 %). Both at every size: "
          "reproduced; one of the two: partly. No competence gate: the times do not depend on the weights", _c4),
    Claim("C5", "Fig. 6, §4.1", "Outputs are similar to the baseline's at the same λ.",
          f"{STYLE_GATE}. Ours/baseline Eq. 5 ≤ 1.5 and content and style terms each within 2×: reproduced; "
          "Eq. 5 ≤ 3×: partly", _c5),
    Claim("C6", "Fig. 3", "Reconstructions from higher layers keep structure but lose colour and fine detail.",
          f"{INVERSION_GATE}the shallowest layer's reconstruction ≥ {FIDELITY_DB:g} dB from the image (else "
          "inconclusive). PSNR falls with depth (Spearman ρ ≤ −0.8) and colour distance rises (ρ ≥ 0.8): reproduced; "
          "one: partly", _c6),
    Claim("C7", "Fig. 4", "Style reconstructions from higher layers carry larger-scale structure.",
          f"{INVERSION_GATE}each reconstruction keeps ≤ {NOISE_SHARE:g}× the high-band power share (above 0.25 "
          "cycles/px) of its uniform-noise start, the noise-only control (else inconclusive). Dominant wavelength "
          "rises with depth, ρ ≥ 0.8: reproduced; ρ > 0: partly", _c7),
    Claim("C8", "§4.2, Figs. 8–9", "ℓ_pixel beats ℓ_feat in PSNR and SSIM.",
          f"{SR_GATE}. ℓ_pixel above ℓ_feat in every set × factor × metric (standard protocol): reproduced; "
          "in half: partly", _c8),
    Claim("C9", "§4.2, Fig. 8", "ℓ_feat reconstructs more fine detail (sharper edges).",
          f"{SR_GATE}. More: ℓ_feat's gradient energy (relative to the truth) above ℓ_pixel's; right: ℓ_feat's "
          f"high-band correlation with the truth ≥ ℓ_pixel's − {HF_CORR_TOLERANCE:g} (detail.high_band_correlation). "
          "Both in every set × factor: reproduced; each in at least half: partly (the worse of the two decides); "
          "rightness not measured: inconclusive", _c9),
    Claim("C10", "§4.2", "ℓ_feat shows a slight cross-hatch pattern.",
          f"{SR_GATE}; networks with the paper's fractionally strided convolutions (else inconclusive). Residual "
          "spectrum's periodic peak (rings up to the period-2 checkerboard) ℓ_feat/ℓ_pixel "
          f"{HATCH_SLIGHT[0]:g}–{HATCH_SLIGHT[1]:g}× (median): reproduced; ≥ 1.2× (or above {HATCH_SLIGHT[1]:g}×: "
          "present but not slight): partly", _c10),
    Claim("C11", "§4.1, Fig. 7", "Networks trained at one size work at larger sizes.",
          f"an extra criterion of this study, not in the tally (C2 tests the paper's number). {STYLE_GATE}. "
          "Network/content-image objective ratio at larger sizes ≤ 1.5× that at the training size: reproduced; "
          "≤ 3×: partly", _c11, apart=True),
)


def evaluate(profile: str, root: Path | None = None) -> pd.DataFrame:
    """One row per claim: id, where, statement, evidence, verdict, rule, reason (why inconclusive
    or not tested) and apart (an extra criterion, not in the headline tally)."""
    res = Results(profile, root)
    rows = []
    for c in CLAIMS:
        try:
            out = Outcome(*c.test(res))
        except (KeyError, ValueError, IndexError, TypeError) as err:  # a table of an unexpected shape
            why = f"could not be evaluated: {type(err).__name__}: {err}"
            out = Outcome(why, UNTESTED, why)
        rows.append({"claim": c.id, "where": c.where, "paper": c.statement, "evidence": out.evidence,
                     "verdict": out.verdict, "rule": c.rule, "reason": out.reason, "apart": c.apart})
    return pd.DataFrame(rows)


def tally(table: pd.DataFrame) -> str:
    """"3 reproduced, 1 partly, 6 inconclusive, 0 not reproduced, 0 not tested" over the headline
    claims (those not shown apart), every verdict named in :data:`VERDICTS`' order."""
    rows = table[~table.apart.astype(bool)] if "apart" in table else table
    counts = rows.verdict.value_counts()
    return ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)


# ---------------------------------------------------------------------------------------------
# the CPU profile's targets (issue 14), measured


def targets(profile: str, root: Path | None = None) -> pd.DataFrame:
    res = Results(profile, root)
    rows = []
    eq, size = fig5(res), _train_size(res)
    g = eq[eq["size"] == size] if eq is not None and size is not None else None
    if g is not None and len(g):  # Fig. 5 measured at the training size (from the verdicts' start)
        k = float(g.matched_at.median())
        rows.append({"target": f"C1: network ≤ L-BFGS@100 at {size}² (≤ @50: partly)",
                     "measured": f"L-BFGS matches the network at iteration {iterations_text(k, g.iterations_run.max())} (median)",
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
