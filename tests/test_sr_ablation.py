"""The ℓ_feat super-resolution ablation (:mod:`perceptual.study.chapters.sr_ablation`): one change
per variant, scored after every segment, resumable, judged by the claims' competence gate."""
from __future__ import annotations

import pandas as pd
import pytest

from perceptual.study import claims, profiles
from perceptual.study.chapters import sr_ablation


def test_the_gate_is_the_claims_gate():
    b_psnr, b_ssim = 28.42, 0.810  # the published cpu run's Set5 ×4 bicubic
    assert not sr_ablation.works(22.17, 0.427, b_psnr, b_ssim)  # the published ℓ_feat network: broken
    assert sr_ablation.works(b_psnr - claims.FEAT_GATE_DB, claims.FEAT_GATE_SSIM * b_ssim, b_psnr, b_ssim)  # edge
    assert not sr_ablation.works(b_psnr - claims.FEAT_GATE_DB - 0.01, b_ssim, b_psnr, b_ssim)
    assert not sr_ablation.works(b_psnr, claims.FEAT_GATE_SSIM * b_ssim - 0.001, b_psnr, b_ssim)


def test_each_variant_is_scored_after_each_segment_and_an_interrupted_ablation_resumes(monkeypatch):
    from perceptual.method import superres
    from perceptual.study import experiments

    ctx = experiments.Context.create(profiles.get("demo", gpu=False), "cpu")
    variants = (("base", "as the profile", {}, (2, 4)), ("tv", "TV 1e-6", {"tv_weight": 1e-6}, (2,)),
                ("nearest", "resize-convolution", {"upsample": "nearest"}, (2,)))
    table = sr_ablation.feat_ablation(ctx, progress=False, variants=variants)
    df = pd.read_csv(table)
    assert list(zip(df.variant, df.iterations)) == [("base", 2), ("base", 4), ("tv", 2), ("nearest", 2)]
    from perceptual.method.train import load_model

    nets = {r.variant: load_model(table.parent / "ablation" / r.run / "model.pt")[0].arch for r in df.itertuples()
            if r.variant != "base"}
    assert nets["nearest"]["upsample"] == "nearest" and nets["tv"]["upsample"] == "deconv"
    assert (df.bicubic_psnr.nunique(), df.psnr.nunique()) == (1, 4)  # one bicubic; each network its own score
    assert df.psnr.between(5, 60).all() and df.ssim.between(-1, 1).all() and (df.train_seconds > 0).all()
    assert list(df.works) == [sr_ablation.works(*r) for r in zip(df.psnr_matched, df.ssim_matched, df.bicubic_psnr,
                                                                  df.bicubic_ssim)]  # matched, as the claims judge
    from perceptual.book import pages

    shown = pages.ablation_table(table)
    assert [r[0] for r in shown.rows] == ["base", "base", "tv", "nearest"]
    assert "Variants: base: as the profile; tv: TV 1e-6; nearest: resize-convolution." in shown.notes
    first = df.iloc[0]
    assert shown.rows[0][3] == f"{first.psnr_matched:.2f} ({first.psnr_matched - first.bicubic_psnr:+.2f})".replace("-", "−")

    calls = []  # done: nothing is trained again; a lost last row: only that segment is scored again
    monkeypatch.setattr(superres, "train_sr", lambda *a, **k: calls.append(k["stop_after"]) or pytest.fail("trained"))
    assert sr_ablation.feat_ablation(ctx, progress=False, variants=variants) == table and calls == []
    from perceptual.core import store

    meta = store.read_meta(table)
    store.write_table(df.iloc[:2], table, {**meta, "key": f"partial {meta['key']}"})
    monkeypatch.undo()
    scored = []  # only the lost rows are scored again; the networks exist, so nothing trains
    real = sr_ablation._scores
    monkeypatch.setattr(sr_ablation, "_scores", lambda *a: scored.append(a[1].parent.name) or real(*a))
    assert list(pd.read_csv(sr_ablation.feat_ablation(ctx, progress=False, variants=variants)).psnr) == list(df.psnr)
    assert scored == list(df.run[2:])
