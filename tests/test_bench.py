"""`perceptual bench --tiny`: the speed benchmark writes its rows and columns (no timing asserted)."""
import pandas as pd
import pytest

from perceptual import cli
from perceptual.core import paths, store

TRAIN_COLUMNS = {"kind", "case", "variant", "precision", "channels_last", "iterations", "its_per_s", "seconds",
                 "speedup", "final_loss", "loss_ratio", "early_loss", "device", "hardware"}
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


def _rows(device: str, hardware: str, train: dict, infer: dict) -> pd.DataFrame:
    """A bench table by hand: train = {(case, variant): (its_per_s, speedup, loss_ratio)},
    infer = {(case, variant): (seconds, speedup, psnr)}."""
    rows = [{"kind": "train", "case": c, "variant": v, "precision": v.split("-")[-1], "its_per_s": i,
             "speedup": s, "loss_ratio": r, "seconds": 1 / i, "psnr_vs_fp32": float("nan")}
            for (c, v), (i, s, r) in train.items()]
    rows += [{"kind": "inference", "case": c, "variant": v, "precision": v.split("-")[-1], "seconds": t,
              "speedup": s, "psnr_vs_fp32": p, "size": int(c.split("-")[1])} for (c, v), (t, s, p) in infer.items()]
    return pd.DataFrame(rows).assign(device=device, hardware=hardware)


def test_the_inference_table_keeps_the_bench_order(tmp_path):
    """Paths in the order the bench ran them (as trained, fast fp32, reduced precision, compiled,
    ONNX), not sorted by name; one cell per size: seconds · speed-up · PSNR."""
    from perceptual.book import pages

    order = ["eager-fp32", "fast-fp32", "fast-bf16", "compiled-bf16", "onnxruntime-fp32"]
    frame = _rows("cpu", "2-core CPU", {("style-256-b4", "eager-fp32"): (0.2, 1.0, 1.0)},
                  {(f"style-{size}", v): (0.1 * (k + 1), 1.0, 50.0) for size in (256, 512) for k, v in enumerate(order)})
    table = store.write_table(frame.assign(final_loss=1.0), tmp_path / "bench.csv", {"summary": "s"})
    infer = pages.bench_tables(table)[-1]
    assert [r[0] for r in infer.rows] == order and infer.header == ["path", "256²", "512²"]
    assert infer.rows[1][1] == "0.200 s · 1.00× · 50.0 dB"


def test_targets_judged_by_the_stated_rules():
    from perceptual.study import bench

    cpu = _rows("cpu", "2-core CPU", {
        ("style-256-b4", "eager-fp32"): (0.2, 1.0, 1.0), ("style-256-b4", "fast-bf16"): (0.42, 2.1, 1.02),
        ("sr-x4-288-b4", "eager-fp32"): (0.3, 1.0, 1.0), ("sr-x4-288-b4", "fast-bf16"): (0.57, 1.9, 1.05)},
        {("style-512", "eager-fp32"): (0.7, 1.0, float("inf")), ("style-512", "fast-fp32"): (0.35, 2.0, 100.0),
         ("style-512", "fast-bf16"): (0.19, 3.7, 39.0)})  # the fastest path is below the PSNR floor
    j = bench.judge(cpu).set_index("target")
    assert j.met.tolist() == [True, False, False, True, False]  # style ×, SR ×, 512², style loss, SR loss
    assert j.measured.tolist()[:3] == [2.1, 1.9, 2.0] and j.variant.iloc[2] == "fast-fp32"
    gpu = _rows("cuda:0", "H100", {
        ("style-256-b4", "eager-fp32"): (50.0, 1.0, 1.0), ("style-256-b4", "eager-fp32-repeat"): (51.0, 1.02, 1.1),
        ("style-256-b4", "fast-bf16"): (71.0, 1.42, 0.96),
        ("sr-x4-288-b4", "eager-fp32"): (70.0, 1.0, 1.0), ("sr-x4-288-b4", "fast-bf16"): (120.0, 1.7, 1.0)},
        {("style-1024", "eager-fp32"): (0.009, 1.0, float("inf")), ("style-1024", "fast-fp16"): (0.0031, 2.9, 79.0)})
    g = bench.judge(gpu)
    assert g.met.tolist() == [True, False, False, True]  # 71 it/s; 3.1 ms; style loss 0.96; SR loss 1.0
    assert g.fp32_repeat.iloc[2] == pytest.approx(1.1) and g.fp32_repeat.isna().iloc[[0, 1, 3]].all()


@pytest.mark.parametrize("graphed_early, met, best", [(1_000_500.0, True, "graphed-bf16"), (1_100_000.0, False, "fast-bf16")])
def test_a_graphed_row_counts_only_if_it_trains_like_the_fast_path(graphed_early, met, best):
    from perceptual.study import bench

    gpu = _rows("cuda:0", "H100", {
        ("style-256-b4", "eager-fp32"): (50.0, 1.0, 1.0), ("style-256-b4", "fast-bf16"): (62.0, 1.24, 0.99),
        ("style-256-b4", "graphed-bf16"): (95.0, 1.9, 0.98)}, {})
    gpu["early_loss"] = [1_010_000.0, 1_000_000.0, graphed_early]  # first-20 means: 0.05 % or 10 % off the fast path
    g = bench.judge(gpu).set_index("target").iloc[0]  # style training ≥ 70 it/s
    assert (g.met, g.variant, g.measured) == (met, best, 95.0 if met else 62.0)
    assert bench.judge(gpu.drop(columns="early_loss")).iloc[0].variant == "graphed-bf16"  # older tables: no test


def test_publish_bench_names_the_run_and_keeps_the_recorded_version(tmp_path, monkeypatch):
    from perceptual.book import site as book
    from perceptual.study import published

    monkeypatch.setattr(paths, "published_dir", lambda: tmp_path / "published")
    table = store.write_table(_rows("cuda", "NVIDIA H100 80GB HBM3", {("style-256-b4", "fast-bf16"): (80.0, 1.5, 1.0)},
                                    {}), tmp_path / "bench.csv",
                              {"profile": "paper", "created": "2026-11-26T02:17:30+00:00", "code_version": "abc-dirty"})
    dst = published.publish_bench(table, code_version="945ce0e")
    assert dst == tmp_path / "published/benchmarks/paper-nvidia-h100-80gb-hbm3-2026-11-26t02-17.csv"
    meta = store.read_meta(dst)
    assert (meta["code_version"], meta["code_version_recorded"]) == ("945ce0e", "abc-dirty")
    assert book.published_profiles() == []  # the benchmarks folder is no profile
    with pytest.raises(FileNotFoundError, match="with its .meta.json"):
        published.publish_bench(tmp_path / "missing.csv")


def test_a_published_sensitivity_table_is_shown_apart_from_the_bench_runs(tmp_path, monkeypatch):
    from perceptual.book import pages
    from perceptual.study import published

    monkeypatch.setattr(paths, "published_dir", lambda: tmp_path / "published")
    rows = [{"variant": v, "transformation_net": p, "loss_net": p, "channels_last": cl, "iterations": 20,
             "final_loss": f, "ratio": f / 100.0, "hardware": "NVIDIA H100 80GB HBM3", "curve": f"{f}"}
            for v, p, cl, f in (("fp32-nchw", "fp32", False, 100.0), ("fp32", "fp32", True, 101.0),
                                ("bf16", "bf16", True, 99.0))]
    table = store.write_table(pd.DataFrame(rows), tmp_path / "sensitivity.csv",
                              {"profile": "paper", "created": "2026-11-26T10:46:00+00:00", "code_version": "x-dirty"})
    dst = published.publish_bench(table, code_version="03c9a57")
    assert dst == tmp_path / "published/benchmarks/sensitivity/paper-nvidia-h100-80gb-hbm3-2026-11-26t10-46.csv"
    assert pages.published_benchmarks() == []  # not a bench run: no targets to judge
    [shown] = pages.published_sensitivity()
    assert shown.caption.endswith("NVIDIA H100 80GB HBM3; code 03c9a57") and [r[-1] for r in shown.rows] == [
        "1.000", "1.010", "0.990"]
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    store.meta_path(tmp_path / "junk.csv").write_text("{}")
    with pytest.raises(ValueError, match="neither a bench table"):
        published.publish_bench(tmp_path / "junk.csv")


def test_runs_on_one_machine_side_by_side(tmp_path):
    """pages.bench_runs: one target column per run, judged; each run's headline numbers, CPU
    iterations/s to three significant figures (a CPU step takes seconds)."""
    from perceptual.book import pages

    def run(name: str, created: str, fast_512: tuple[str, float, float], graphed: dict | None = None) -> object:
        frame = _rows("cpu", "2-core CPU", {
            ("style-256-b4", "eager-fp32"): (0.1939, 1.0, 1.0), ("style-256-b4", "fast-bf16"): (0.4005, 2.07, 0.967),
            ("sr-x4-288-b4", "eager-fp32"): (0.2706, 1.0, 1.0), ("sr-x4-288-b4", "fast-bf16"): (0.6611, 2.44, 0.993),
            **(graphed or {})},
            {("style-512", "eager-fp32"): (0.67, 1.0, float("inf")), ("style-512", fast_512[0]): fast_512[1:]})
        return store.write_table(frame, tmp_path / f"{name}.csv",
                                 {"profile": "cpu", "created": created, "code_version": name, "loss_network": "vgg19-caffe"})

    old = run("old", "2026-11-26T03:23:50+00:00", ("fast-bf16", 0.215, 3.09, 57.4))
    new = run("new", "2026-11-26T05:47:43+00:00", ("fast-int8", 0.167, 4.02, 50.3),
              {("style-256-b4", "graphed-bf16"): (0.5004, 2.58, 0.967)})  # a graphed row, as on CUDA
    targets, numbers = pages.bench_runs([old, new])
    assert targets.header == ["goal", "rule", "2026-11-26 03:23", "2026-11-26 05:47"]
    row_512 = next(r for r in targets.rows if r[0].startswith("inference 512²"))
    assert row_512[2:] == ["3.09 missed", "4.02 met"]
    header = numbers.header
    style = [r[header.index("style it/s: eager → fast (→ graphed)")] for r in numbers.rows]
    assert style == ["0.194 → 0.401", "0.194 → 0.401 → 0.500"]  # the graphed speed where the run has one
    assert [r[header.index("style loss ratio (fp32 repeat)")] for r in numbers.rows] == ["0.967", "0.967"]


def test_first_gradient_is_the_hand_computed_gradient():
    """A 1×1 convolution summed: d(Σ w·x)/dw_c = Σ x_c, in float32 in either layout; bf16 autocast
    rounds the product's inputs (8 significant bits), so it lands near, not on, it."""
    import torch

    from perceptual.study import bench

    batch = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)  # (B, C, H, W)
    batch[0, :, 0, 0] = 1  # Σ x_c = 31 · 255 + 1 = 7906: 13 significant bits, more than bf16 holds
    expected = batch.double().sum(dim=(0, 2, 3)).float()  # (3,)

    def make() -> torch.nn.Module:
        conv = torch.nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([0.5, -1.25, 2.0]).reshape(1, 3, 1, 1))
        return conv

    step = lambda model, x: {"total": model(x).sum()}  # noqa: E731
    cpu = torch.device("cpu")
    for fast in (False, True):
        assert torch.equal(bench.first_gradient(make(), step, batch, cpu, "fp32", fast), expected)
    assert bench.relative_error(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 5.0])) == pytest.approx(10 ** 0.5 / 5)
    low = bench.first_gradient(make(), step, batch, cpu, "bf16", True)
    assert 0 < bench.relative_error(low, expected) < 2 ** -8  # bf16 rounds 7906 to 7904


@pytest.mark.slow
def test_tiny_sensitivity_writes_one_row_per_perturbation(monkeypatch):
    from perceptual.study import bench

    monkeypatch.setenv("DEVICE", "cpu")
    assert cli.main(["bench", "--profile", "demo", "--tiny", "--sensitivity", "-q"]) == 0
    table = paths.results_dir() / "demo" / "speed" / "sensitivity.csv"
    df = pd.read_csv(table).set_index("variant")
    assert list(df.index) == [v[0] for v in bench.SENSITIVITY]
    assert df.loc["fp32-nchw", "ratio"] == 1.0 and (df.iterations == 4).all() and (df.final_loss > 0).all()
    assert df.ratio.tolist() == pytest.approx((df.final_loss / df.loc["fp32-nchw", "final_loss"]).tolist())
    assert (df.loc["bf16-transformation-net", ["transformation_net", "loss_net"]].tolist() == ["bf16", "fp32"]
            and df.loc["bf16-loss-net", ["transformation_net", "loss_net"]].tolist() == ["fp32", "bf16"])
    assert df.style_grams.tolist() == ["NCHW", "NCHW", "channels-last", "NCHW", "NCHW", "NCHW", "NCHW"]
    assert df.loc["fp32-grams-cl", "final_loss"] != df.loc["fp32", "final_loss"]  # the other Grams were used
    assert 0 < store.read_meta(table)["style_grams_apart"] < 1e-5  # float32 rounding apart, measured
    for one in ("bf16-transformation-net", "bf16-loss-net"):  # bf16 in one network: neither run
        assert df.loc[one, "final_loss"] not in (df.loc["fp32", "final_loss"], df.loc["bf16", "final_loss"])
    assert len(df.loc["fp32", "curve"].split()) == 2  # one mean per 2-iteration window of 4
    assert df.loc["fp32-nchw", "grad_error"] == 0.0 and (df.batch_spread > 0).all()  # the reference; two batches
    float32 = df.loc[["fp32", "fp32-grams-cl"], "grad_error"]
    assert (float32 < 1e-3).all() and float32["fp32-grams-cl"] > 0  # targets ≈ 1e-7 apart: float32's rounding
    bf16 = df.loc[["bf16", "bf16-nchw", "bf16-transformation-net", "bf16-loss-net"], "grad_error"]
    assert (bf16 > 10 * float32.max()).all()  # bf16 anywhere perturbs a step far more (8 bits, not 24)
