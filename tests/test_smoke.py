"""The smoke profile (what CI runs): one override table on top of a profile, nothing else."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from perceptual import cli
from perceptual.core import data
from perceptual.study import experiments, profiles
from perceptual.core.config import flatten

# what a smoke may change besides the SMOKE table: identity, the offline loss network, the alias
ALLOWED = {"name", "description", "notes", "data_aliases", "loss_network", "style.loss.network", "sr.network"}


def test_paper_smoke_is_paper_plus_the_table():
    paper, smoke = profiles.get("paper", gpu=True), profiles.get("paper-smoke", gpu=True)
    before, after = dict((k, v) for k, v, _ in flatten(paper)), dict((k, v) for k, v, _ in flatten(smoke))
    changed = {k for k in before if before[k] != after[k]}
    assert changed - ALLOWED == {k for k, v in profiles.SMOKE if before[k] != v}  # the table and nothing else
    assert len(changed - ALLOWED) >= 20
    assert all(after[k] == v for k, v in profiles.SMOKE)
    assert (smoke.name, smoke.loss_network, smoke.sr.network) == ("paper-smoke", "vgg19-caffe", "vgg19-caffe")
    assert smoke.train_dirs == paper.train_dirs == ("coco/train2014",)  # the paper's layout, read via the alias
    assert dict(smoke.data_aliases) == {"coco/train2014": "coco/val2014"} and paper.data_aliases == ()
    assert len(smoke.fig5_sizes) == len(paper.fig5_sizes) and len(smoke.table1_sizes) == len(paper.table1_sizes)
    assert any("coco/train2014 read from coco/val2014" in n for n in smoke.notes)


def test_smoke_of_any_profile_and_loss_network_override(monkeypatch):
    assert profiles.get("small-smoke", gpu=False).style.iterations == 4
    monkeypatch.setenv("LOSS_NETWORK", "random")
    assert profiles.get("paper-smoke", gpu=True).style.loss.network == "random"
    with pytest.raises(KeyError, match="paper-smoke"):
        profiles.get("nope-smoke")


def test_alias_reads_val2014_for_train2014_only_in_the_smoke(tmp_path):
    folder = tmp_path / "coco" / "val2014"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "a.jpg")
    smoke = experiments.Context(profiles.get("paper-smoke", gpu=True), torch.device("cpu"), tmp_path)
    assert smoke.data("coco/train2014") == folder
    assert smoke.data("coco/val2014") == folder
    paper = experiments.Context(profiles.get("paper", gpu=True), torch.device("cpu"), tmp_path)
    with pytest.raises(data.DataMissing, match="coco/train2014"):
        paper.data("coco/train2014")


@pytest.mark.parametrize("argv, expected", [(["--smoke"], "paper-smoke"),
                                            (["--smoke", "--profile", "small"], "small-smoke"),
                                            (["--profile", "demo"], "demo")])
def test_cli_smoke_flag_names_the_derived_profile(monkeypatch, argv, expected):
    seen = []
    monkeypatch.setattr("perceptual.book.site.reproduce", lambda profile, **kw: seen.append(profile) or 0)
    assert cli.main(["reproduce", *argv]) == 0
    assert seen == [expected]
