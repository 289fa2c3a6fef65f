"""C8–C10: ℓ_pixel against ℓ_feat super-resolution (Figs. 8 and 9) — PSNR/SSIM, whether the added
detail is there and right, and the cross-hatch."""
from __future__ import annotations

import pandas as pd

from perceptual.study.claims.gates import sr_gate
from perceptual.study.claims.verdicts import (NOT, PARTLY, REPRODUCED, Outcome, Results, _inconclusive, _untested,
                                              _worst)



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


def _sr_iterations_text(s: pd.DataFrame) -> str:
    """Each network's real training iterations, where the SR table records them."""
    if "iterations" not in s:
        return ""
    it = s[s.method.isin(["pixel", "feat"])].drop_duplicates(["factor", "method"])
    it = it[pd.to_numeric(it.iterations, errors="coerce").notna()]
    if not len(it):
        return ""
    return " (trained " + ", ".join(f"ℓ_{r.method} ×{r.factor} {int(r.iterations)}" for r in
                                    it.sort_values(["factor", "method"]).itertuples()) + " iterations)"


def _c8(res: Results) -> Outcome:
    s = sr_table(res)
    if s is None:
        return _untested("superres/sr_summary.csv not computed")
    wins, total, parts = 0, 0, []
    for metric in ("psnr", "ssim"):
        p = _sr_pair(s, metric, "pixel", "feat")
        wins += int((p.pixel > p.feat).sum())
        total += len(p)
        parts.append(f"{metric.upper()}: ℓ_pixel above ℓ_feat in {int((p.pixel > p.feat).sum())} of {len(p)} set×factor "
                     f"(mean margin {(p.pixel - p.feat).mean():+.3g})")
    if not total:
        return _untested("ℓ_pixel and ℓ_feat not both evaluated")
    text = "; ".join(parts) + _sr_iterations_text(s)
    gate = sr_gate(s)
    if gate:
        return _inconclusive(text, *gate)
    return Outcome(text, REPRODUCED if wins == total else PARTLY if wins >= total / 2 else NOT)


def _detail(res: Results, column: str, what: str) -> tuple[pd.DataFrame | None, pd.DataFrame | str]:
    """(the SR table, ℓ_pixel vs ℓ_feat of ``column``) or (None, why it cannot be tested)."""
    s = sr_table(res)
    if s is None or column not in s:
        return None, f"{what} not computed"
    p = _sr_pair(s, column, "pixel", "feat")
    return (s, p) if len(p) else (None, "ℓ_pixel and ℓ_feat not both evaluated")


HF_CORR_TOLERANCE = 0.1  # ℓ_feat's added detail is right: high-band correlation ≥ ℓ_pixel's − 0.1


def _c9(res: Results) -> Outcome:
    s, p = _detail(res, "grad_ratio", "detail measures")
    if s is None:
        return _untested(p)
    more = int((p.feat > p.pixel).sum())
    text = (f"gradient energy / ground truth's: ℓ_feat {p.feat.mean():.2f} vs ℓ_pixel {p.pixel.mean():.2f} "
            f"(mean over set×factor; ℓ_feat higher in {more} of {len(p)})")
    numeric = "lpips" in s and pd.to_numeric(s["lpips"], errors="coerce").notna().all()  # else: the reason
    lp = _sr_pair(s, "lpips", "pixel", "feat") if numeric else pd.DataFrame()
    if len(lp):
        text += f"; LPIPS ℓ_feat {lp.feat.mean():.3f} vs ℓ_pixel {lp.pixel.mean():.3f}"
    corr = _sr_pair(s, "hf_corr", "pixel", "feat") if "hf_corr" in s else pd.DataFrame()
    if len(corr):
        right = int((corr.feat >= corr.pixel - HF_CORR_TOLERANCE).sum())
        text += (f"; high-band correlation with the truth: ℓ_feat {corr.feat.mean():.2f} vs ℓ_pixel "
                 f"{corr.pixel.mean():.2f} (ℓ_feat's ≥ ℓ_pixel's − {HF_CORR_TOLERANCE:g} in {right} of {len(corr)})")
    else:
        text += "; high-band correlation with the truth (is the detail right): not measured"
    gate = sr_gate(s)
    if gate:
        return _inconclusive(text, *gate)
    if not len(corr):
        return _inconclusive(text, "whether the added detail is right is not measured (no high-band correlation "
                                   "with the truth, hf_corr, in the SR table)")
    amount = REPRODUCED if more == len(p) else PARTLY if more >= len(p) / 2 else NOT
    rightness = REPRODUCED if right == len(corr) else PARTLY if right >= len(corr) / 2 else NOT
    return Outcome(text, _worst([amount, rightness]))


HATCH_SLIGHT = (2.0, 10.0)  # a slight pattern: its peak 2–10× ℓ_pixel's (above 10×: present, not slight)


def _c10(res: Results) -> Outcome:
    s, p = _detail(res, "hatch_peak", "residual spectra")
    if s is None:
        return _untested(p)
    ratio = float((p.feat / p.pixel).median())
    lo, hi = HATCH_SLIGHT
    text = (f"strongest periodic peak of the residual spectrum, ℓ_feat / ℓ_pixel: median {ratio:.2f}× over "
            f"{len(p)} set×factor")
    if res.meta("superres/sr_summary.csv").get("detail_version", 1) < 2:
        text += " (measured before the spectrum's rings reached f = 0.5: the period-2 checkerboard is not included)"
    gate = sr_gate(s)
    if gate:
        return _inconclusive(text, *gate)
    upsample = (res.meta("superres/sr_summary.csv").get("config") or {}).get("upsample", "deconv")
    if upsample != "deconv":  # the cross-hatch is the fractionally strided convolutions' (paper §4.2)
        return _inconclusive(text, "the networks are not the paper's", f"they upsample by {upsample} ×2 and a "
                             "convolution, which cannot make the checkerboard the paper's stride-½ convolutions leave")
    if lo <= ratio <= hi:
        return Outcome(text, REPRODUCED)
    return Outcome(text + (f"; above {hi:g}×: a pattern, but not a slight one" if ratio > hi else ""),
                   PARTLY if ratio >= 1.2 else NOT)
