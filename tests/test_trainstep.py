"""The training step: the eager one by hand (Adam's first step), and for the CUDA-graph one what
is refused where it cannot run (CI has no GPU) and where the bench and the optimiser switch it
on. Capture and replay themselves need a CUDA device."""
import pytest
import torch

from perceptual import bench, precision, trainstep


def test_eager_step_is_one_adam_step_on_the_total():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    x = torch.tensor([[3.0, 1.0]])

    def step(m, batch):
        out = m(batch)  # (1, 1): 1·3 − 2·1 = 1
        return {"total": out.pow(2).sum(), "out": out.sum()}

    opt = precision.adam(model.parameters(), 0.1, "cpu")
    terms = trainstep.trainer(model, step, opt, "cpu", "fp32")(x)
    assert terms["total"].item() == 1.0 and terms["out"].item() == 1.0
    # gradient 2·out·x = (6, 2); Adam's first step is lr·g/(|g| + eps) = 0.1 per weight, against g
    assert torch.allclose(model.weight, torch.tensor([[0.9, -2.1]]), atol=1e-6)


def test_refused_off_cuda_and_for_fp16():
    with pytest.raises(ValueError, match="need a CUDA device, got cpu; train without --cuda-graph"):
        trainstep.check("cpu", "bf16")
    with pytest.raises(ValueError, match="bf16 or fp32.*got fp16"):
        trainstep.check("cuda", "fp16")
    trainstep.check("cuda", "bf16")  # accepted: nothing touches the device here
    trainstep.check("cuda", "fp32")
    model = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match="CUDA device"):
        trainstep.GraphedStep(model, lambda m, b: {"total": m(b).sum()}, torch.optim.Adam(model.parameters()),
                              "cpu", "bf16")


def test_capturable_adam_and_uncached_autocast_only_where_asked():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert precision.adam(params, 1e-3, "cpu", capturable=True).defaults["capturable"] is False  # CUDA only
    assert precision.adam(params, 1e-3, "cpu").defaults["capturable"] is False
    with precision.autocast("cpu", "bf16", cache=False):
        assert torch.is_autocast_enabled("cpu") and not torch.is_autocast_cache_enabled()
    with precision.autocast("cpu", "bf16"):
        assert torch.is_autocast_cache_enabled()


@pytest.mark.parametrize("prec, graphed", [("bf16", True), ("fp32", True), ("fp16", False)])
def test_bench_adds_a_graphed_row_on_cuda(monkeypatch, prec, graphed):
    seen = []

    def fake(model, step, batches, device, *, lr, prec, fast, warmup, desc, progress, graph):
        seen.append((desc.split()[-1], prec, fast, graph))
        return 10.0, [1.0] * len(batches)

    monkeypatch.setattr(bench, "train_iterations", fake)
    rows = bench.training_rows("style-256-b4", lambda: torch.nn.Identity(), None, [torch.zeros(1)] * 4, None,
                               torch.device("cuda"), prec, 1e-3, warmup=1, tail=2)
    expect = [("eager-fp32", "fp32", False, False), ("eager-fp32-repeat", "fp32", False, False),
              (f"fast-{prec}", prec, True, False)] + ([(f"graphed-{prec}", prec, True, True)] if graphed else [])
    assert seen == expect and [r["variant"] for r in rows] == [e[0] for e in expect]
    seen.clear()
    bench.training_rows("style-256-b4", lambda: torch.nn.Identity(), None, [torch.zeros(1)] * 4, None,
                        torch.device("cpu"), prec, 1e-3, warmup=1, tail=2)
    assert not any(graph for *_, graph in seen)  # never on a CPU


def test_a_failed_capture_costs_its_row_only(monkeypatch, caplog):
    def fake(model, step, batches, device, *, graph, **kw):
        if graph:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")
        return 10.0, [1.0] * len(batches)

    monkeypatch.setattr(bench, "train_iterations", fake)
    rows = bench.training_rows("style-256-b4", lambda: torch.nn.Identity(), None, [torch.zeros(1)] * 4, None,
                               torch.device("cuda"), "bf16", 1e-3, warmup=1, tail=2)
    assert [r["variant"] for r in rows] == ["eager-fp32", "eager-fp32-repeat", "fast-bf16"]
    assert "graphed-bf16: no row, the CUDA graph failed: CUDA error: operation not permitted" in caplog.text

    def broken(model, step, batches, device, *, graph, **kw):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(bench, "train_iterations", broken)
    with pytest.raises(RuntimeError, match="out of memory"):  # the other rows' errors still stop the bench
        bench.training_rows("style-256-b4", lambda: torch.nn.Identity(), None, [torch.zeros(1)] * 4, None,
                            torch.device("cuda"), "bf16", 1e-3, warmup=1, tail=2)
