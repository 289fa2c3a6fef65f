"""`perceptual bench --tiny`: the speed benchmark writes its rows and columns (no timing asserted)."""
import pandas as pd
import pytest

from perceptual import cli, paths, store

TRAIN_COLUMNS = {"kind", "case", "variant", "precision", "channels_last", "iterations", "its_per_s", "seconds",
                 "speedup", "final_loss", "loss_ratio", "device", "hardware"}
INFERENCE_COLUMNS = {"size", "seconds", "speedup", "psnr_vs_fp32"}


@pytest.mark.slow
def test_tiny_bench_writes_rows_and_columns(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("DEVICE", "cpu")
    assert cli.main(["bench", "--profile", "demo", "--tiny", "-q"]) == 0
    table = paths.results_dir() / "demo" / "speed" / "bench.csv"
    df = pd.read_csv(table)
    assert TRAIN_COLUMNS | INFERENCE_COLUMNS <= set(df.columns)
    train = df[df.kind == "train"]
    assert set(train.case) == {"style-48-b2", "sr-x4-48-b2"}
    assert set(train.variant) >= {"eager-fp32"} and len(train) == 4  # baseline and fast path per case
    assert train[train.variant == "eager-fp32"].loss_ratio.tolist() == [1.0, 1.0]
    infer = df[df.kind == "inference"]
    assert set(infer["size"]) == {48, 64}
    assert {"eager-fp32", "fast-fp32", "onnxruntime-fp32"} <= set(infer.variant)
    assert infer[["seconds", "psnr_vs_fp32"]].notna().all().all()
    assert "summary" in store.read_meta(table)
