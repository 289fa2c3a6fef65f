"""The study in one GPU window, checked on the CPU: several jobs per GPU, a command that stops at
its deadline with every run checkpointed and is resumed by the next one, and the results packed
into the few bounded files that come back (issue: the paper at its own scale)."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import torch

from perceptual import cli
from perceptual.core.config import PAPER
from perceptual.method import train
from perceptual.method.transformer import StyleNet
from perceptual.study import jobs, profiles, transfer
from test_jobs import by_name, calls, fake_train, make_jobs


def test_the_gpu_profile_has_the_papers_settings():
    p = profiles.get("gpu", gpu=True)
    assert (p.style.image_size, p.style.style_size, p.style.batch_size, p.style.iterations, p.style.lr) == \
        (256, 512, 4, 40_000, 1e-3)
    assert p.style.net.norm == "batch" and p.authors_weights and p.train_dirs == ("train",)
    assert (p.fig5_sizes, p.fig5_images, p.fig5_iterations) == ((256, 512, 1024), 10, 500)
    assert (p.sr.patch, p.sr.batch_size, p.sr.lr, p.sr.feature_layer, p.sr.iterations) == (288, 4, 1e-3, "relu2_2", 40_000)
    assert not p.sr_iterations and not p.sr_method_iterations  # ℓ_pixel and ℓ_feat: one schedule
    assert len(p.qualitative_styles) == 4 and p.sr_factors == (4, 8)


def test_several_workers_share_one_gpu(tmp_path):
    assert jobs.slots(["0"], 3) == ["0.0", "0.1", "0.2"] and jobs.slots(["0", "1"]) == ["0", "1"]
    todo = make_jobs(tmp_path, ["a", "b", "c", "d"])
    said = []
    outcomes = by_name(jobs.run_local(todo, ["0"], runner=fake_train, say=said.append, per_gpu=2))
    assert {o.status for o in outcomes.values()} == {"trained"}
    ran = calls(tmp_path)
    assert {c[1] for c in ran} == {"0"}  # every worker sees GPU 0
    assert len({c[2] for c in ran}) == 2  # two worker processes took the jobs
    assert {o.device for o in outcomes.values()} == {"GPU 0.0", "GPU 0.1"}


def _tiny_fit(run_dir, iterations=6, deadline=None, demo_root=None):
    cfg = replace(PAPER.style, iterations=iterations, checkpoint_every=3, batch_size=2, val_images=0)
    torch.manual_seed(0)
    data = train.SquareImages(sorted((demo_root / "train/demo").iterdir())[:4], 48, "warp")
    return train.fit(StyleNet(padding="zero", width=4), lambda m, b: {"total": (m(b) - b).pow(2).mean()}, data, cfg,
                     run_dir=run_dir, meta={"config_hash": "t"},
                     options=train.FitOptions(progress=False, deadline=deadline))


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    from perceptual.core import demo

    return demo.materialize(tmp_path_factory.mktemp("demo"))


def test_a_deadline_checkpoints_and_the_next_command_resumes_to_the_same_weights(tmp_path, demo_root):
    with pytest.raises(train.runfolder.DeadlineReached) as info:
        _tiny_fit(tmp_path / "b", deadline=time.time() - 1, demo_root=demo_root)  # already past: stop after one step
    assert info.value.exit_code == 75 and "deadline reached after iteration 1" in str(info.value)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["iteration"] == 1
    resumed = torch.load(_tiny_fit(tmp_path / "b", demo_root=demo_root), weights_only=True)["model"]
    full = torch.load(_tiny_fit(tmp_path / "a", demo_root=demo_root), weights_only=True)["model"]
    assert all(torch.equal(resumed[k], full[k]) for k in full)


def test_the_deadline_comes_from_the_command(monkeypatch):
    monkeypatch.setenv("PERCEPTUAL_DEADLINE", "123.5")
    assert train.FitOptions().deadline == 123.5
    monkeypatch.delenv("PERCEPTUAL_DEADLINE")
    assert train.FitOptions().deadline is None


def stop_at_deadline(job, device):
    if job.name == "late":
        raise train.runfolder.DeadlineReached("style late: deadline reached after iteration 7; checkpoint written")
    fake_train(job, device)


def test_a_job_stopped_by_the_deadline_is_resumable_not_failed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(jobs, "training_jobs", lambda ctx: make_jobs(tmp_path, ["a", "late"]))
    built = []
    code = jobs.reproduce("demo", gpus=["0"], runner=stop_at_deadline, then=lambda *a, **k: built.append(1) or 0,
                          per_gpu=2)
    assert code == 75 and not built  # nothing evaluated until every network is trained
    assert "deadline reached: 1 of 2 training jobs checkpointed (late)" in capsys.readouterr().err


def test_pack_fits_the_way_back_and_unpacks_bit_for_bit(tmp_path):
    src = tmp_path / "gpu"
    (src / "tables").mkdir(parents=True)
    payload = torch.randint(0, 256, (3 * 2**20,), dtype=torch.uint8).numpy().tobytes()  # incompressible, 3 MiB
    (src / "tables" / "a.bin").write_bytes(payload)
    (src / "b.json").write_text(json.dumps({"x": 1}))
    parts = transfer.pack(src, tmp_path / "out", max_files=8, max_bytes=2**20)
    assert len(parts) == 5 and all(p.stat().st_size <= 2**20 for p in parts)  # 4 parts + manifest
    with pytest.raises(transfer.TooBig, match="more than 4 files"):
        transfer.pack(src, tmp_path / "out2", max_files=4, max_bytes=2**20)
    assert not (tmp_path / "out2").exists()  # refused before writing
    back = transfer.unpack(tmp_path / "out" / "gpu.manifest.json", tmp_path / "back")
    assert (back / "tables" / "a.bin").read_bytes() == payload and (back / "b.json").is_file()
    (tmp_path / "out" / "gpu.tgz.01").write_bytes(b"cut")
    with pytest.raises(ValueError, match="do not match its sha256"):
        transfer.unpack(tmp_path / "out" / "gpu.manifest.json", tmp_path / "again")


def test_pack_and_unpack_on_the_command_line(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "t.csv").write_text("a,b\n1,2\n")
    assert cli.main(["pack", str(tmp_path / "r"), str(tmp_path / "o")]) == 0
    assert cli.main(["unpack", str(tmp_path / "o" / "r.manifest.json"), str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "r" / "t.csv").read_text() == "a,b\n1,2\n"
    assert cli.main(["pack", str(tmp_path / "nothing"), str(tmp_path / "o")]) != 0
    assert "nothing: no such folder to pack" in capsys.readouterr().err
