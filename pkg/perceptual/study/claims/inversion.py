"""C6 and C7: what the inversions of Figs. 3 and 4 show — fidelity and colour by depth, the style
reconstructions' scale against a noise-only control."""
from __future__ import annotations

import numpy as np
import pandas as pd

from perceptual.evaluation import detail, metrics
from perceptual.study.claims.gates import FIDELITY_DB, NOISE_SHARE, Gate
from perceptual.study.claims.verdicts import NOT, PARTLY, REPRODUCED, Outcome, Results, _inconclusive, _untested



def _layers(res: Results, figure: str) -> list[str]:
    inv = res.table("inversion/inversion.csv")
    return [] if inv is None else list(dict.fromkeys(inv[inv.figure == figure].layer))


def inversion_measures(res: Results) -> pd.DataFrame | None:
    """Per layer: feature reconstructions' PSNR and colour-histogram distance to the target,
    style reconstructions' dominant wavelength (px) and high-band power share (above 0.25
    cycles/px), each run's convergence (NaN where the table predates it), and a ``control`` row:
    the style reconstructions' uniform-noise start under the same measures."""
    target = res.image("inversion/feature_target.png")
    if target is None:
        return None
    inv = res.table("inversion/inversion.csv")
    done = (inv.groupby(["figure", "layer"]).converged.last().to_dict() if "converged" in inv
            else {})  # tables from before convergence was recorded: unknown
    rows = []
    for layer in _layers(res, "fig3"):
        img = res.image(f"inversion/feature_{layer}.png")
        rows.append({"figure": "fig3", "layer": layer, "psnr": metrics.psnr_rgb(target, img),
                     "colour_distance": detail.colour_histogram_distance(img, target),
                     "converged": done.get(("fig3", layer), np.nan)})
    for layer in _layers(res, "fig4"):
        img = res.image(f"inversion/style_{layer}.png")
        rows.append({"figure": "fig4", "layer": layer, "wavelength": detail.dominant_wavelength(img),
                     "high_share": detail.high_band_share(img), "converged": done.get(("fig4", layer), np.nan)})
    start = res.image("inversion/style_start.png")
    if start is not None:
        rows.append({"figure": "control", "layer": "uniform start", "wavelength": detail.dominant_wavelength(start),
                     "high_share": detail.high_band_share(start)})
    return pd.DataFrame(rows)


def _unconverged(f: pd.DataFrame) -> Gate | None:
    """Why the reconstructions in ``f`` cannot be judged for convergence, or None when all converged."""
    bad = [r.layer for r in f.itertuples() if not (r.converged is True or r.converged == 1.0)]
    if not bad:
        return None
    if f.converged.isna().any():
        return Gate("the reconstructions were not run to convergence (computed before it was checked)")
    return Gate("the reconstructions did not converge", f"{', '.join(bad)} reached the iteration cap while still "
                                                         "changing")


def _c6(res: Results) -> Outcome:
    m = inversion_measures(res)
    if m is None or not len(m[m.figure == "fig3"]):
        return _untested("inversion not computed")
    f = m[m.figure == "fig3"].reset_index(drop=True)
    depth = list(range(len(f)))
    rho_psnr, rho_col = detail.spearman(depth, f.psnr), detail.spearman(depth, f.colour_distance)
    text = (", ".join(f"{r.layer} {r.psnr:.1f} dB / {r.colour_distance:.2f}" for r in f.itertuples()) +
            f" (PSNR / colour distance to the target; Spearman ρ with depth {rho_psnr:.2f} / {rho_col:.2f})")
    unsettled = _unconverged(f)
    if unsettled:
        return _inconclusive(text, *unsettled)
    if f.psnr.iloc[0] < FIDELITY_DB:
        return _inconclusive(text, f"the shallowest layer's reconstruction is not faithful ({f.layer.iloc[0]} "
                                   f"{f.psnr.iloc[0]:.1f} dB < {FIDELITY_DB:g} dB)")
    ok = [rho_psnr <= -0.8, rho_col >= 0.8]
    return Outcome(text, REPRODUCED if all(ok) else PARTLY if any(ok) else NOT)


def _c7(res: Results) -> Outcome:
    m = inversion_measures(res)
    if m is None or not len(m[m.figure == "fig4"]):
        return _untested("inversion not computed")
    f = m[m.figure == "fig4"].reset_index(drop=True)
    rho = detail.spearman(range(len(f)), f.wavelength)
    text = ", ".join(f"{r.layer} {r.wavelength:.1f} px" for r in f.itertuples()) + \
        f" (power-weighted mean wavelength; Spearman ρ with depth {rho:.2f})"
    control = m[m.figure == "control"]
    if not len(control):
        return _inconclusive(text, "no noise-only control (the reconstructions' start was not saved)")
    c = control.iloc[0]
    text += ("; share of power above 0.25 cycles/px " + ", ".join(f"{r.layer} {r.high_share:.2f}" for r in f.itertuples())
             + f", noise-only control {c.high_share:.2f} ({c.wavelength:.1f} px)")
    unsettled = _unconverged(f)
    if unsettled:
        return _inconclusive(text, *unsettled)
    noisy = [r.layer for r in f.itertuples() if r.high_share > NOISE_SHARE * c.high_share]
    if noisy:
        return _inconclusive(text, "leftover starting noise dominates the measure",
                             f"{', '.join(noisy)} keep more than {NOISE_SHARE:g}× the control's high-band share")
    return Outcome(text, REPRODUCED if rho >= 0.8 else PARTLY if rho > 0 else NOT)
