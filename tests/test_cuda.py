"""What needs a CUDA device, run where there is one (skipped elsewhere, CI included): training with
the step replayed as a CUDA graph — the default on a GPU — against eager training, resuming, and
the eager fallback when a step cannot be captured. In fp32 with deterministic cuDNN (the training
commands' ``--deterministic``), so "equal" means to the last bit. On a GPU box: ``pytest tests/test_cuda.py``."""
from dataclasses import replace

import pytest
import torch

from perceptual.core import demo
from perceptual.method import objective, superres, train
from perceptual.core.config import PAPER

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The embedded demo photographs (6 training photos, 2 of them held out) and style."""
    root = demo.materialize(tmp_path_factory.mktemp("demo"))
    return root / demo.STYLE_FILE, [root / "train/demo"]


STYLE = replace(PAPER.style, iterations=40, image_size=64, style_size=64, batch_size=2, precision="fp32",
                checkpoint_every=20, val_images=2, loss=replace(PAPER.style.loss, network="random"))


def style_run(folder, data, **kw):
    style, photos = data
    return train.train_style(STYLE, style, photos, folder, "cuda", progress=False, deterministic=True, **kw)


def weights_and_graph(path) -> tuple[dict, object]:
    saved = torch.load(path, weights_only=True)
    return saved["model"], saved["meta"]["segments"][-1]["cuda_graph"]  # whether a graph replayed


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_graphed_training_equals_eager_and_resumes(tmp_path, data):
    graphed, used = weights_and_graph(style_run(tmp_path / "graphed", data))
    eager, off = weights_and_graph(style_run(tmp_path / "eager", data, cuda_graph=False))
    assert used is True and off is False and same(graphed, eager)
    style_run(tmp_path / "resumed", data, stop_after=20)  # stopped at the checkpoint, then resumed
    path = style_run(tmp_path / "resumed", data)
    resumed, _ = weights_and_graph(path)
    assert same(resumed, graphed)
    segments = torch.load(path, weights_only=True)["meta"]["segments"]
    assert [(seg["iterations"], seg["cuda_graph"]) for seg in segments] == [([0, 20], True), ([20, 40], True)]


def test_sr_training_graphed_equals_eager(tmp_path, data):
    cfg = replace(PAPER.sr, iterations=30, patch=64, batch_size=2, precision="fp32", checkpoint_every=30,
                  val_images=2, network="random")
    runs = [weights_and_graph(superres.train_sr(cfg, "feat", data[1], tmp_path / str(g), "cuda", progress=False,
                                                cuda_graph=g, deterministic=True)) for g in (True, False)]
    assert [graph for _, graph in runs] == [True, False] and same(runs[0][0], runs[1][0])


def test_a_step_that_cannot_be_captured_trains_eagerly(tmp_path, data, monkeypatch):
    real = objective.Objective.train_step

    def syncing(self, model, batch):
        terms = real(self, model, batch)
        terms["total"].item()  # a read-back to the host: not allowed while a graph is captured
        return terms

    monkeypatch.setattr(objective.Objective, "train_step", syncing)
    fell_back, recorded = weights_and_graph(style_run(tmp_path / "fallback", data))
    assert recorded is False
    assert "could not be captured as a CUDA graph" in (tmp_path / "fallback" / "train.log").read_text()
    eager, _ = weights_and_graph(style_run(tmp_path / "eager", data, cuda_graph=False))
    assert same(fell_back, eager)
    with pytest.raises(RuntimeError):  # asked for explicitly: the failure is raised
        style_run(tmp_path / "asked", data, cuda_graph=True)
