"""Independent training jobs: one worker process per (fake) GPU, and Slurm through submitit's
local executor. The jobs are tiny stand-ins (``fake_train``) that record every call, so the tests
show which job ran where and how often."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from perceptual import jobs, profiles  # light imports: the worker processes import this module too

GPUS = ["0", "1"]


def fake_train(job: jobs.Job, device: str | None) -> None:
    """Record (job, visible GPU, process), then write model.pt — or fail as the job's name says."""
    with open(job.run_dir.parent / "calls.log", "a") as log:
        log.write(f"{job.name} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')} {os.getpid()}\n")
    time.sleep(0.3)  # long enough that both workers are busy at once
    if job.name == "bad":
        raise RuntimeError("loss became nan")
    if job.name == "crash":
        os._exit(3)  # the worker process dies without reporting
    (job.run_dir / "model.pt").write_bytes(b"trained")


def calls(folder: Path) -> list[list[str]]:
    log = folder / "calls.log"
    return [line.split() for line in log.read_text().splitlines()] if log.is_file() else []


def make_jobs(folder: Path, names: list[str]) -> list[jobs.Job]:
    profile = profiles.get("demo", gpu=False)
    return [jobs.Job(n, "fake", (), folder / n, profile, folder) for n in names]


def by_name(outcomes: list[jobs.Outcome]) -> dict[str, jobs.Outcome]:
    assert len({o.name for o in outcomes}) == len(outcomes)
    return {o.name: o for o in outcomes}


def test_training_jobs_names_and_run_folders_of_the_paper_profile(tmp_path):
    import torch

    from perceptual.study import experiments

    ctx = experiments.Context(profiles.get("paper", gpu=True), torch.device("cpu"), tmp_path)
    found = jobs.training_jobs(ctx)
    assert [j.name for j in found] == [
        "style-la_muse", "style-starry_night", "style-wave", "style-composition_vii",
        "sr-x4-pixel", "sr-x4-feat", "sr-x4-srcnn", "sr-x8-pixel", "sr-x8-feat"]  # SRCNN at ×4 only (paper)
    style = found[0]
    assert style.run_dir == experiments.style_run_dir(ctx, "styles/fast-neural-style/la_muse.jpg")
    assert found[6].run_dir == experiments.sr_run_dir(ctx, 4, "srcnn")
    assert len({j.run_dir for j in found}) == 9
    assert jobs.training_jobs(ctx) == found  # stable across calls


def test_parallel_jobs_each_trained_once_failure_reported_by_name(tmp_path):
    names = ["a", "b", "bad", "c", "d", "done"]
    todo = make_jobs(tmp_path, names)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "model.pt").write_bytes(b"old")
    said = []
    outcomes = by_name(jobs.run_local(todo, GPUS, runner=fake_train, say=said.append))
    assert {n: o.status for n, o in outcomes.items()} == {
        "a": "trained", "b": "trained", "c": "trained", "d": "trained", "bad": "failed", "done": "skipped"}
    assert "RuntimeError: loss became nan" in outcomes["bad"].detail
    assert "loss became nan" in (tmp_path / "bad" / "job-error.txt").read_text()  # the traceback is kept
    first = calls(tmp_path)
    assert sorted(c[0] for c in first) == ["a", "b", "bad", "c", "d"]  # once each; "done" never
    assert {c[1] for c in first} == set(GPUS)  # both workers took jobs, each with its own GPU visible
    assert len({c[2] for c in first}) == 2 and str(os.getpid()) not in {c[2] for c in first}
    assert any("[GPU" in s and "failed bad" in s for s in said)
    assert (tmp_path / "done" / "model.pt").read_bytes() == b"old"

    again = by_name(jobs.run_local(todo, GPUS, runner=fake_train, say=said.append))  # a rerun
    assert {n for n, o in again.items() if o.status == "skipped"} == {"a", "b", "c", "d", "done"}
    assert [c[0] for c in calls(tmp_path)[len(first):]] == ["bad"]  # only the failed job runs again


def test_dead_worker_fails_its_job_and_the_others_finish(tmp_path):
    outcomes = by_name(jobs.run_local(make_jobs(tmp_path, ["crash", "x", "y", "z"]), GPUS, runner=fake_train,
                                      say=lambda s: None))
    assert outcomes["crash"].status == "failed" and "died with exit code 3" in outcomes["crash"].detail
    assert {n for n, o in outcomes.items() if o.status == "trained"} == {"x", "y", "z"}


def test_reproduce_builds_only_after_every_job_and_not_after_a_failure(tmp_path, monkeypatch, capsys):
    built = []

    def fake_book(name, only=None, build_book=True, device=None):
        built.append((name, sorted(p.parent.name for p in tmp_path.glob("*/model.pt")), len(calls(tmp_path))))
        return 0

    monkeypatch.setattr(jobs, "training_jobs", lambda ctx: make_jobs(tmp_path, ["p", "q", "r"]))
    assert jobs.reproduce("demo", gpus=GPUS, runner=fake_train, then=fake_book) == 0
    assert built == [("demo", ["p", "q", "r"], 3)]  # the build saw every model, after every job

    monkeypatch.setattr(jobs, "training_jobs", lambda ctx: make_jobs(tmp_path, ["p", "bad", "s"]))
    assert jobs.reproduce("demo", gpus=GPUS, runner=fake_train, then=fake_book) == 1
    err = capsys.readouterr().err
    assert "training job bad failed: RuntimeError: loss became nan" in err and "1 of 3 training jobs failed" in err
    assert len(built) == 1 and (tmp_path / "s" / "model.pt").is_file()  # s finished; no build


def test_slurm_path_with_the_local_executor(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    # the executor's processes import this module by name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    todo = make_jobs(tmp_path, ["a", "bad", "c", "done"])
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "model.pt").write_bytes(b"old")
    options = jobs.SlurmOptions(partition="gpu", time_min=5, cpus=1, cluster="local")
    outcomes = by_name(jobs.run_slurm(todo, tmp_path / "slurm", options, runner=fake_train, say=lambda s: None))
    assert {n: o.status for n, o in outcomes.items()} == {"a": "trained", "bad": "failed", "c": "trained",
                                                          "done": "skipped"}
    assert "loss became nan" in outcomes["bad"].detail
    assert sorted(c[0] for c in calls(tmp_path)) == ["a", "bad", "c"]
    assert {c[1] for c in calls(tmp_path)} == {"0"}  # one GPU per job (gpus_per_node=1)
    # preemption / timeout: submitit requeues the same task, which resumes from its run folder
    task = jobs.SlurmTask(todo[0], fake_train)
    delayed = task.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission) and delayed.function is task


def test_cli_rejects_bad_gpu_lists(capsys):
    from perceptual import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["reproduce", "--gpus", "0,x"])
    assert exit_.value.code == 2 and "--gpus '0,x'" in capsys.readouterr().err
    assert jobs.parse_gpus("0, 1,3") == ["0", "1", "3"]
    with pytest.raises(ValueError, match="distinct"):
        jobs.parse_gpus("1,1")
