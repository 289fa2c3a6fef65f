"""The training step: the eager one by hand (Adam's first step), and for the CUDA-graph one what
is refused where it cannot run (CI has no GPU) and where the bench and the optimiser switch it
on. Capture and replay themselves need a CUDA device."""
import copy

import pytest
import torch

from perceptual.study import bench
from perceptual.runtime import precision, trainstep


def test_eager_step_is_one_optimiser_step_on_the_total():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    x = torch.tensor([[3.0, 1.0]])

    def step(m, batch):
        out = m(batch)  # (1, 1)
        return {"total": out.pow(2).sum(), "out": out.sum()}

    train_step = trainstep.trainer(model, step, torch.optim.SGD(model.parameters(), lr=0.01), "cpu", "fp32")
    terms = train_step(x)  # out = 1·3 − 2·1 = 1; gradient 2·out·x = (6, 2)
    assert terms["total"].item() == 1.0 and terms["out"].item() == 1.0
    assert terms["total"].grad_fn is None  # no autograd graph kept alive past its step
    assert torch.allclose(model.weight, torch.tensor([[0.94, -2.02]]))
    terms = train_step(x)  # out = 0.94·3 − 2.02 = 0.8; gradient (4.8, 1.6) — not added to the last one
    assert terms["out"].item() == pytest.approx(0.8)
    assert torch.allclose(model.weight, torch.tensor([[0.892, -2.036]]))


class EmulatedGraph(trainstep.GraphedStep):
    """GraphedStep with its three CUDA calls done on a CPU as CUDA does them: a capture records
    without running (model, optimiser and gradients left as they were), a replay runs the recorded
    step on the captured input into the captured outputs. Its backward writes the gradients afresh
    if there were none at capture (they were allocated inside), else adds to them, as the recorded
    kernels would."""

    captures = 0

    def _on_side_stream(self, fn):
        return fn()

    def _capture(self, fn):
        EmulatedGraph.captures += 1
        self._fn = fn
        params = list(self.model.parameters())
        self._fresh = all(p.grad is None for p in params)
        saved = copy.deepcopy((self.model.state_dict(), self.opt.state_dict(), [p.grad for p in params]))
        out = {k: v.detach().clone() for k, v in fn().items()}
        self.model.load_state_dict(saved[0])
        self.opt.load_state_dict(saved[1])
        for p, g in zip(params, saved[2]):
            p.grad = g
        return out

    def _replay(self):
        if self._fresh:
            for p in self.model.parameters():
                p.grad = None
        for k, v in self._fn().items():
            self.terms[k].copy_(v.detach())


def _linear_run(graph_class=None, **kw):
    """Seven batches through a Linear model: eager (``graph_class`` None) or through the class."""
    batches = [torch.randn(2, 3, generator=torch.Generator().manual_seed(i)) for i in range(7)]
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    step = lambda m, b: {"total": (m(b) - b.sum(1, keepdim=True)).pow(2).mean()}  # noqa: E731
    if graph_class is None:
        run = trainstep.trainer(model, step, opt, "cpu", "fp32")
    else:
        for group in opt.param_groups:
            group["capturable"] = True
        run = graph_class(model, step, opt, "cuda", "fp32", **kw)
        for group in opt.param_groups:
            group["capturable"] = False
    return [run(b)["total"].item() for b in batches], model.weight.detach().clone(), run


def test_graphed_step_trains_on_each_batch_in_order_like_eager():
    """Warm-up, capture and replays give the weights and losses eager training gives."""
    EmulatedGraph.captures = 0
    eager, w_eager, _ = _linear_run()
    graphed, w_graphed, run = _linear_run(EmulatedGraph)
    assert EmulatedGraph.captures == 1 and run.calls == 7 and run.warmup == 3
    assert graphed == eager and torch.equal(w_graphed, w_eager)
    assert torch.equal(run.input, torch.randn(2, 3, generator=torch.Generator().manual_seed(6)))  # the last batch
    with pytest.raises(ValueError, match=r"one batch shape and dtype: \(2, 3\).*got \(3, 3\)"):
        run(torch.zeros(3, 3))


class FailingCapture(EmulatedGraph):
    """A step that cannot be captured (it reads a loss back on the host, say): the capture raises
    as CUDA's does — when it ends, after the backward pass has allocated gradients it never filled
    (garbage here) — with the host read's error as the cause."""

    error = RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")
    abandoned = 0

    def _capture(self, fn):
        with precision.autocast(self.device, self.prec, cache=False):
            terms = self.step(self.model, self.input)
        terms["total"].backward()
        for p in self.model.parameters():
            p.grad.fill_(float("nan"))  # what the graph's pool holds: never computed
        if isinstance(self.error, torch.cuda.OutOfMemoryError):
            raise self.error
        try:
            raise self.error
        except RuntimeError:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")  # noqa: B904

    def _abandon(self):
        FailingCapture.abandoned += 1


def test_a_failed_capture_trains_on_eagerly_where_a_fallback_is_given():
    """Every batch is still trained once, in order: the one whose capture failed eagerly, and
    every later one; the fallback hears the reason once. Without one, the failure is raised."""
    eager, w_eager, _ = _linear_run()
    heard = []
    losses, weights, run = _linear_run(FailingCapture, fallback=heard.append)
    assert losses == eager and torch.equal(weights, w_eager) and run.eager and run.input is None
    assert heard == ["the training step could not be captured as a CUDA graph (CUDA error: operation not "
                     "permitted when stream is capturing); training on eagerly"]  # the cause, not the echo
    assert FailingCapture.abandoned == 1
    with pytest.raises(RuntimeError, match="previous error during capture"):
        _linear_run(FailingCapture)
    FailingCapture.error = torch.cuda.OutOfMemoryError("CUDA out of memory")
    try:
        with pytest.raises(torch.cuda.OutOfMemoryError):  # memory is not the step's fault: raised
            _linear_run(FailingCapture, fallback=heard.append)
    finally:
        FailingCapture.error = RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")


def test_plan_graphs_wherever_they_can_run():
    """None (the default) = a graph where one can run; True is checked; False is eager."""
    assert trainstep.plan("bf16", "cuda") == ("bf16", True)
    assert trainstep.plan("fp32", "cuda") == ("fp32", True)
    assert trainstep.plan("fp16", "cuda") == ("fp16", False)  # the scaler syncs with the host
    assert trainstep.plan("fp32", "cpu") == ("fp32", False)
    assert trainstep.plan("bf16", "cuda", False) == ("bf16", False)
    with pytest.raises(ValueError, match="bf16 or fp32.*got fp16"):
        trainstep.plan("fp16", "cuda", True)
    with pytest.raises(ValueError, match="need a CUDA device, got cpu"):
        trainstep.plan("fp32", "cpu", True)
    # a compiled step is never captured: no graph by default, and asking for both is refused
    assert trainstep.plan("bf16", "cuda", None, compiled=True) == ("bf16", False)
    assert trainstep.plan("fp32", "cpu", None, compiled=True) == ("fp32", False)
    with pytest.raises(ValueError, match="--compile and --cuda-graph are alternatives"):
        trainstep.plan("bf16", "cuda", True, compiled=True)


def test_graphed_step_needs_a_capturable_optimiser():
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match="capturable=True"):  # refused before any CUDA call
        trainstep.GraphedStep(model, lambda m, b: {"total": m(b).sum()}, torch.optim.Adam(model.parameters()),
                              "cuda", "bf16")


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
