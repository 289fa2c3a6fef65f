"""Nothing lost, nothing misleading (issue 9): stylize never destroys files, run folders always
recover, every bad argument is one clear line, downloads say what went wrong, docs match code."""
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptual.book import site as book
from perceptual import cli
from perceptual.core import data, paths, store
from perceptual.method import memory, superres, train
from perceptual.study import profiles
from perceptual.tools import stylize
from perceptual.runtime import trainstep
from perceptual.core.config import PAPER
from perceptual.method.transformer import SRNet, StyleNet

PKG = Path(__file__).resolve().parents[1] / "pkg"


def photo(path: Path, seed: int = 0, size=(48, 56)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return path


@pytest.fixture(scope="module")
def sr_model_file(tmp_path_factory) -> Path:
    net = SRNet(4)
    path = tmp_path_factory.mktemp("sr") / "model.pt"
    store.atomic_torch_save({"model": net.state_dict(),
                             "meta": {"kind": "sr", "arch": net.arch, "factor": 4, "method": "feat"}}, path)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# 1. stylize never loses anything


def test_atomic_writes_have_normal_permissions_and_can_refuse_to_replace(tmp_path):
    old = os.umask(0o022)
    try:
        store.atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # 0o666 minus the umask, not 0o600
        os.umask(0o077)
        store.atomic_write_text(tmp_path / "b.txt", "x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    with pytest.raises(FileExistsError, match="a.txt"):
        with store.atomic_path(tmp_path / "a.txt", overwrite=False) as tmp:
            tmp.write_text("new")
    assert (tmp_path / "a.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temporary left


def test_stylize_keeps_existing_outputs_unless_overwrite(tmp_path, style_model, capsys):
    src = photo(tmp_path / "in" / "x.jpg")
    out = tmp_path / "out"
    precious = photo(out / "x.png", seed=7).read_bytes()  # a complete image: kept, skipped (a rerun resumes)
    assert cli.main(["stylize", str(style_model), str(src), "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {out / 'x.png'}: exists" in err and "1 existing output kept" in err and "--overwrite" in err
    assert (out / "x.png").read_bytes() == precious
    old = os.umask(0o022)
    try:
        assert cli.main(["stylize", str(style_model), str(src), "-o", str(out), "-q", "--overwrite"]) == 0
    finally:
        os.umask(old)
    with Image.open(out / "x.png") as im:
        assert im.size == (56, 48)
    assert (out / "x.png").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in out.iterdir()) == ["x.png"]


def test_stylize_name_collisions_fail_before_any_work(tmp_path, style_model, capsys):
    a, b, c = photo(tmp_path / "a" / "x.jpg", 1), photo(tmp_path / "b" / "x.jpg", 2), photo(tmp_path / "x.png", 3)
    out = tmp_path / "out"
    assert cli.main(["stylize", str(style_model), str(a.parent), str(b.parent), str(c), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(a) in err and str(b) in err and "out/x.png" in err
    assert not out.exists()
    assert stylize.plan_outputs([a.parent], out) == [(a, out / "x.png")]  # alone, it has its name


def test_stylize_into_the_input_folder_only_when_nothing_collides(tmp_path, style_model, capsys):
    photos = tmp_path / "photos"
    photo(photos / "x.jpg", 1)
    photo(photos / "x.png", 2)
    before = snapshot(photos)
    assert cli.main(["stylize", str(style_model), str(photos), "-o", str(photos), "-q", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "would replace the input" in err and err.count("\n") == 1
    assert snapshot(photos) == before  # the originals are untouched, even with --overwrite
    (photos / "x.png").unlink()
    assert cli.main(["stylize", str(style_model), str(photos), "-o", str(photos), "-q"]) == 0
    assert sorted(p.name for p in photos.iterdir()) == ["x.jpg", "x.png"]


def test_stylize_refuses_a_super_resolution_model(tmp_path, sr_model_file):
    photo(tmp_path / "in" / "x.jpg")
    with pytest.raises(ValueError, match=r"×4 super-resolution model \(feat\), not a style network"):
        stylize.stylize_files(sr_model_file, [tmp_path / "in"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_stylize_output_folder_problems(tmp_path, style_model):
    src = photo(tmp_path / "x.jpg")
    (tmp_path / "afile").write_text("")
    with pytest.raises(stylize.OutputError, match="is a file"):
        stylize.plan_outputs([src], tmp_path / "afile")
    with pytest.raises(stylize.OutputError, match="cannot create the folder"):
        stylize.plan_outputs([src], tmp_path / "afile" / "sub")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images in this folder"):
        stylize.plan_outputs([tmp_path / "empty"], tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# 2. run folders always recover


@pytest.fixture(scope="module")
def square_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    return train.SquareImages([photo(folder / f"{i}.png", i) for i in range(5)], 44, "warp")


def tiny_fit(run_dir, data, iterations=6, step_hook=None, **kw):
    cfg = replace(PAPER.style, iterations=iterations, checkpoint_every=3, batch_size=2, val_images=0)
    torch.manual_seed(0)
    model = StyleNet(padding="zero", width=4)
    calls = {"n": 0}

    def step(m, batch):
        if step_hook:
            step_hook(calls["n"])
        calls["n"] += 1
        return {"total": (m(batch) - batch).pow(2).mean()}

    return train.fit(model, step, data, cfg, run_dir=run_dir, meta={"config_hash": "t"},
                     options=train.FitOptions(progress=False, **kw))


def same_weights(a: Path, b: Path) -> bool:
    x, y = torch.load(a, weights_only=True)["model"], torch.load(b, weights_only=True)["model"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_model_pt_is_derived_when_a_kill_hit_its_writing(tmp_path, square_data, monkeypatch):
    full = tiny_fit(tmp_path / "full", square_data)
    real_save = store.atomic_torch_save

    def killed_while_writing_model(obj, path):
        if Path(path).name == "model.pt":
            (Path(path).parent / ".model.pt.x1y2.tmp").write_bytes(b"half")  # what the kill leaves
            raise KeyboardInterrupt  # the process died here
        real_save(obj, path)

    monkeypatch.setattr(store, "atomic_torch_save", killed_while_writing_model)
    with pytest.raises(KeyboardInterrupt):
        tiny_fit(tmp_path / "b", square_data)
    monkeypatch.setattr(store, "atomic_torch_save", real_save)
    run = tmp_path / "b"
    assert (run / "checkpoint.pt").is_file() and not (run / "model.pt").exists()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 6
    again = tiny_fit(run, square_data)  # the rerun: nothing to train, model.pt written from the checkpoint
    assert again == run / "model.pt" and same_weights(again, full)
    assert not list(run.glob(".*.tmp")) and not (run / "run.lock").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_a_checkpoint_then_stops(tmp_path, square_data, signum):
    before = signal.getsignal(signum)

    def send_at_iteration_4(n):
        if n == 4:
            os.kill(os.getpid(), signum)  # arrives during iteration 4 (checkpoints are every 3)

    with pytest.raises(train.TrainingInterrupted) as info:
        tiny_fit(tmp_path / "b", square_data, iterations=8, step_hook=send_at_iteration_4)
    assert info.value.exit_code == 128 + signum
    assert "after iteration 5" in str(info.value) and str(tmp_path / "b" / "checkpoint.pt") in str(info.value)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["iteration"] == 5
    assert signal.getsignal(signum) is before  # handlers only for the duration of fit
    resumed = tiny_fit(tmp_path / "b", square_data, iterations=8)
    assert same_weights(resumed, tiny_fit(tmp_path / "full", square_data, iterations=8))


def test_checkpoint_interval_is_a_parameter_not_part_of_the_identity(tmp_path, square_data):
    run = tmp_path / "r"
    tiny_fit(run, square_data, iterations=6, stop_after=2, checkpoint_every=1)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 2
    assert (run / "train.log").read_text().count("checkpoint written") == 2
    tiny_fit(run, square_data, iterations=6, checkpoint_every=2)  # resumes: the interval is not the config
    assert (run / "train.log").read_text().count("checkpoint written") == 4


def test_cli_checkpoint_every_flag(tmp_path, capsys):
    style = photo(tmp_path / "style.png", 9, (64, 64))
    for i in range(6):  # the paper preset holds 4 out for validation
        photo(tmp_path / "photos" / f"{i}.png", i)
    rc = cli.main(["train-style", "--style", str(style), "--data", str(tmp_path / "photos"), "--out",
                   str(tmp_path / "run"), "--iterations", "2", "--image-size", "44", "--style-size", "32",
                   "--batch-size", "1", "--loss-network", "random", "--checkpoint-every", "1", "--device", "cpu"])
    assert rc == 0 and capsys.readouterr().out.strip().endswith("model.pt")
    assert (tmp_path / "run" / "train.log").read_text().count("checkpoint written") == 2


def test_cli_precision_and_cuda_graph_flags(tmp_path, capsys):
    style = photo(tmp_path / "style.png", 9, (64, 64))
    for i in range(6):
        photo(tmp_path / "photos" / f"{i}.png", i)
    base = ["train-style", "--style", str(style), "--data", str(tmp_path / "photos"), "--iterations", "1",
            "--image-size", "44", "--style-size", "32", "--batch-size", "1", "--loss-network", "random",
            "--device", "cpu"]
    assert cli.main(base + ["--out", str(tmp_path / "run"), "--precision", "fp32"]) == 0
    meta = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["meta"]
    assert meta["provenance"]["precision"] == "fp32" and meta["provenance"]["config"]["precision"] == "fp32"
    assert meta["segments"][-1]["cuda_graph"] is False  # the default: wherever one can run, so not on a CPU
    assert cli.main(base + ["--out", str(tmp_path / "eager"), "--no-cuda-graph"]) == 0
    assert torch.load(tmp_path / "eager" / "model.pt", weights_only=True)["meta"]["segments"][-1][
        "deterministic"] is False
    assert cli.main(base + ["--out", str(tmp_path / "det"), "--deterministic"]) == 0
    assert torch.load(tmp_path / "det" / "model.pt", weights_only=True)["meta"]["segments"][-1]["deterministic"] is True
    capsys.readouterr()
    sr = ["train-sr", "--data", str(tmp_path / "photos"), "--patch", "32", "--iterations", "1", "--device", "cpu",
          "--loss-network", "random"]
    for args, message in ((base + ["--cuda-graph"], "CUDA graphs need a CUDA device"),
                          (base + ["--precision", "fp16"], "fp16 needs a CUDA device"),
                          (sr + ["--cuda-graph"], "CUDA graphs need a CUDA device"),
                          (sr + ["--precision", "fp16"], "fp16 needs a CUDA device"),
                          (base + ["--compile", "--cuda-graph"], "--compile and --cuda-graph are alternatives")):
        assert cli.main(args + ["--out", str(tmp_path / "refused")]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "refused").exists()  # refused before the run folder is made


def test_training_goes_on_eagerly_where_an_automatic_graph_cannot_be_captured(tmp_path, square_data, monkeypatch):
    """By default a CUDA graph is used wherever one can run; where the step cannot be captured
    training goes on eagerly, says so in train.log and records it. A graph asked for gets no
    fallback (its failure is raised). The device is faked: plan says a graph can run, and the
    trainer reports a failed capture (trainstep's own test checks the step itself, and that a
    failed capture leaves no captured input, which is what a segment's ``cuda_graph`` reads)."""
    seen = {}
    real_trainer = trainstep.trainer

    def trainer(model, step, opt, device, prec, graph=False, fallback=None):
        seen.update(graph=graph, fallback=fallback)
        if fallback:
            fallback("the training step could not be captured as a CUDA graph (test); training on eagerly")
        return real_trainer(model, step, opt, device, prec)

    monkeypatch.setattr(trainstep, "plan", lambda name, device, cuda_graph=None, compiled=False: ("fp32", cuda_graph is not False))
    monkeypatch.setattr(trainstep, "trainer", trainer)
    auto = tiny_fit(tmp_path / "auto", square_data, iterations=3)
    assert seen["graph"] is True and seen["fallback"] is not None
    assert "WARNING the training step could not be captured" in (tmp_path / "auto" / "train.log").read_text()
    assert torch.load(auto, weights_only=True)["meta"]["segments"][-1]["cuda_graph"] is False  # none replayed
    assert same_weights(auto, tiny_fit(tmp_path / "eager", square_data, iterations=3, cuda_graph=False))
    assert seen == {"graph": False, "fallback": None}
    tiny_fit(tmp_path / "asked", square_data, iterations=3, cuda_graph=True)
    assert seen == {"graph": True, "fallback": None}


def test_each_process_that_trained_a_run_is_recorded(tmp_path, square_data):
    """A run stopped at iteration 3 and resumed to 6 lists both segments in its model's meta:
    iterations, device, machine, precision, and whether a CUDA graph replayed (never on a CPU)."""
    run = tmp_path / "r"
    tiny_fit(run, square_data, iterations=6, stop_after=3)
    first = torch.load(run / "checkpoint.pt", weights_only=True)["meta"]["segments"]
    assert [seg["iterations"] for seg in first] == [[0, 3]]
    meta = torch.load(tiny_fit(run, square_data, iterations=6), weights_only=True)["meta"]
    assert [seg["iterations"] for seg in meta["segments"]] == [[0, 3], [3, 6]]
    assert all(seg["device"] == "cpu" and seg["cuda_graph"] is False and seg["precision"] in ("bf16", "fp32")
               and seg["hardware"] == store.machine_label(store.hardware("cpu")) for seg in meta["segments"])


def test_deterministic_training_sets_cudnn_for_the_run_and_restores_it(tmp_path, square_data, capsys):
    """--deterministic: cuDNN's deterministic algorithms, no autotuning, while the run trains (the
    flags are read inside the step), recorded in its segment, and the caller's flags restored after;
    without it, a CPU run leaves autotuning off (it is for CUDA) and the flags as they were."""
    seen = []
    hook = lambda n: seen.append((torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic))  # noqa: E731
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    try:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False  # a caller's own choice
        model = tiny_fit(tmp_path / "d", square_data, iterations=2, step_hook=hook, deterministic=True)
        assert seen == [(False, True)] * 2
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (True, False)
        assert torch.load(model, weights_only=True)["meta"]["segments"][-1]["deterministic"] is True
        seen.clear()
        model = tiny_fit(tmp_path / "a", square_data, iterations=2, step_hook=hook)
        assert seen == [(False, False)] * 2  # autotuning is for CUDA
        assert torch.load(model, weights_only=True)["meta"]["segments"][-1]["deterministic"] is False
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (True, False)
        torch.backends.cudnn.deterministic = True  # a caller's own: kept for the run, and recorded
        seen.clear()
        model = tiny_fit(tmp_path / "c", square_data, iterations=2, step_hook=hook)
        assert seen == [(False, True)] * 2
        assert torch.load(model, weights_only=True)["meta"]["segments"][-1]["deterministic"] is True
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == (True, True)
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before


@pytest.mark.slow
def test_compiled_training_resumes_bit_identically(tmp_path, square_data, monkeypatch):
    """--compile: the step through torch.compile (never a CUDA graph), recorded in each segment;
    a run stopped at 3 and resumed ends at the uninterrupted compiled run's weights, bit for bit."""
    real, compiled = torch.compile, []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn) or real(fn, **kw))
    full = tiny_fit(tmp_path / "full", square_data, iterations=6, compile=True)
    tiny_fit(tmp_path / "r", square_data, iterations=6, stop_after=3, compile=True)
    resumed = tiny_fit(tmp_path / "r", square_data, iterations=6, compile=True)
    a, b = (torch.load(p, weights_only=True) for p in (full, resumed))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [(seg["iterations"], seg["compiled"], seg["cuda_graph"]) for seg in b["meta"]["segments"]] == [
        ([0, 3], True, False), ([3, 6], True, False)]
    assert len(compiled) == 3  # each of the three processes trained a compiled step


def test_resume_keeps_the_resuming_optimiser_flags():
    """A checkpoint carries its writer's Adam flags (a CPU's: not fused, not capturable); the
    resuming run keeps its own, and a capturable one gets its step counts as float32 tensors on
    the parameters' device, where it needs them."""
    param = torch.nn.Parameter(torch.ones(3))
    writer = torch.optim.Adam([param], lr=0.1)
    param.grad = torch.ones(3)
    writer.step()
    saved = writer.state_dict()
    assert saved["param_groups"][0]["capturable"] is False
    reader = torch.optim.Adam([param], lr=0.1)
    reader.param_groups[0]["capturable"] = True  # what a CUDA graph's optimiser has
    train.load_optimizer(reader, saved)
    step = reader.state[param]["step"]
    assert reader.param_groups[0]["capturable"] is True and step.dtype == torch.float32 and float(step) == 1.0
    assert torch.equal(reader.state[param]["exp_avg"], writer.state[param]["exp_avg"])
    plain = torch.optim.Adam([param], lr=0.1)
    train.load_optimizer(plain, reader.state_dict())  # and back: the reader's flag, not the writer's
    assert plain.param_groups[0]["capturable"] is False


def test_second_run_in_the_same_folder_is_refused(tmp_path, square_data):
    run = tmp_path / "r"
    run.mkdir()
    other = train.RunLock(run / "run.lock").acquire()  # another process (its own open file)
    try:
        with pytest.raises(train.RunBusy, match=rf"in use by process {os.getpid()} on {socket.gethostname()}"):
            tiny_fit(run, square_data)
        assert not (run / "log.csv").exists()
    finally:
        other.release()
    # a lock file left by a killed process (no flock held) is taken over
    (run / "run.lock").write_text(json.dumps({"pid": 2 ** 22 + 1, "host": socket.gethostname()}))
    assert tiny_fit(run, square_data).name == "model.pt"
    assert not (run / "run.lock").exists()


@pytest.mark.parametrize("content", ["empty", "truncated", "text"])
def test_corrupt_checkpoint_is_one_line_with_the_two_choices(tmp_path, square_data, content):
    run = tmp_path / "r"
    tiny_fit(run, square_data, iterations=6, stop_after=3)
    ckpt = run / "checkpoint.pt"
    raw = ckpt.read_bytes()
    ckpt.write_bytes({"empty": b"", "truncated": raw[: len(raw) // 2], "text": b"hello\nworld\n"}[content])
    with pytest.raises(train.CheckpointError) as info:
        tiny_fit(run, square_data, iterations=6)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(ckpt)) and "delete it" in msg and "backup" in msg
    assert not (run / "run.lock").exists()  # the lock is released on the way out


# ---------------------------------------------------------------------------------------------
# 3. numbers, memory, bad images


def test_int_ranges():
    parse = cli.int_in(1, 10)
    assert parse("1") == 1 and parse("10") == 10
    for bad in ("0", "11", "-5", "x", "2.5"):
        with pytest.raises(Exception, match="out of range|not a whole number"):
            parse(bad)


def test_forward_elements_by_hand():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())
    with torch.device("meta"):
        x = torch.empty(2, 3, 5, 5)
        net = net.to("meta")
    assert memory.forward_elements(lambda: net(x), net) == 2 * (2 * 4 * 5 * 5)  # conv output + relu output


def test_memory_estimate_refuses_what_cannot_fit(tmp_path, monkeypatch):
    small = memory.sr_training_bytes("feat", 4, 96, 4, "vgg16-caffe")
    huge = memory.sr_training_bytes("feat", 4, 5000, 4, "vgg16-caffe")
    assert huge / small == pytest.approx((5000 / 96) ** 2, rel=0.05)  # activations scale with the area
    assert huge > 200 * 2 ** 30  # --patch 5000 was OOM-killed at 24 GB resident
    monkeypatch.setattr(memory, "machine_bytes", lambda device: (16 * 2 ** 30, "this machine's RAM"))
    cfg = replace(PAPER.sr, patch=5000, batch_size=4, network="vgg16-caffe")
    with pytest.raises(memory.TooLarge, match=r"patch 5000 with batch size 4 needs ≈ \d+\.\d GiB.*16\.0 GiB"):
        superres.train_sr(cfg, "feat", [tmp_path], tmp_path / "run", "cpu", progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_bad_training_and_validation_images_are_skipped_alike_and_warned_once(tmp_path, caplog):
    folder = tmp_path / "photos"
    for i in range(4):
        photo(folder / f"b{i}.png", i, (40, 40))
    corrupt(folder / "a_bad.jpg")  # first: a training image
    corrupt(folder / "z_bad.jpg")  # last: held out for validation
    cfg = replace(PAPER.sr, patch=16, iterations=6, batch_size=2, checkpoint_every=6, val_every=3, val_images=2)
    with caplog.at_level(logging.WARNING, logger="perceptual.train"):
        path = superres.train_sr(cfg, "pixel", [folder], tmp_path / "run", "cpu", progress=False)
    assert path.name == "model.pt"
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("skipping training image" in w and "a_bad.jpg" in w for w in warnings) == 1  # visited 3 times
    assert sum("skipping validation image" in w and "z_bad.jpg" in w for w in warnings) == 1
    assert warnings[-1].startswith("2 unreadable image(s) skipped") and "a_bad.jpg" in warnings[-1]
    import pandas as pd

    assert list(pd.read_csv(tmp_path / "run" / "val.csv").iteration) == [3, 6]  # one readable val image


def run_cli(args, env=None, cwd=None):
    full_env = {**os.environ, "PYTHONPATH": str(PKG), **(env or {})}
    return subprocess.run([sys.executable, "-m", "perceptual.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


def bad_argument_table(t: Path, model: Path, sr: Path) -> list[list[str]]:
    m, img = str(model), str(t / "in" / "x.jpg")
    return [
        ["train-style", "--style", img, "--data", str(t / "in"), "--out", str(t / "run"), "--iterations", "0"],
        ["train-style", "--style", img, "--data", str(t / "in"), "--out", str(t / "run"), "--iterations", "-5"],
        ["train-style", "--style", img, "--data", str(t / "in"), "--out", str(t / "run"), "--batch-size", "0"],
        ["train-style", "--style", img, "--data", str(t / "in"), "--out", str(t / "run"), "--image-size", "0"],
        ["train-style", "--style", img, "--data", str(t / "in"), "--out", str(t / "run"), "--image-size", "big"],
        ["train-style", "--style", img, "--data", str(t / "in"), "--out", str(t / "run"), "--seed", "-1"],
        ["train-style", "--style", img, "--data", str(t / "in"), "--out", str(t / "run"), "--loss-network", "x"],
        ["train-style", "--style", img],
        ["train-sr", "--data", str(t / "in"), "--out", str(t / "run"), "--patch", "30"],
        ["train-sr", "--data", str(t / "in"), "--out", str(t / "run"), "--checkpoint-every", "0"],
        ["train-sr", "--data", str(t / "in"), "--out", str(t / "run"), "--factor", "3"],
        ["train-sr", "--data", str(t / "nowhere"), "--out", str(t / "run"), "--method", "pixel", "--patch", "16"],
        ["stylize", m, img, "-o", str(t / "out"), "--max-side", "0"],
        ["stylize", m, img, "-o", str(t / "out"), "--max-side", "-10"],
        ["stylize", m, img, "-o", str(t / "out"), "--strength", "2"],
        ["stylize", m, img, "-o", str(t / "out"), "--strength", "nan"],
        ["stylize", str(t / "missing.pt"), img, "-o", str(t / "out")],
        ["stylize", img, img, "-o", str(t / "out")],  # a JPEG as the model
        ["stylize", str(t / "notes.txt"), img, "-o", str(t / "out")],  # a text file as the model
        ["stylize", str(t / "zero.pt"), img, "-o", str(t / "out")],
        ["stylize", str(sr), img, "-o", str(t / "out")],
        ["stylize", m, str(t / "empty"), "-o", str(t / "out")],
        ["stylize", m, str(t / "nope.jpg"), "-o", str(t / "out")],
        ["stylize", m, img, "-o", str(t / "notes.txt")],  # -o naming a file
        ["profile", "huge"],
        ["run", "nostep"],
        ["data", "fetch", "nosuchset"],
        ["data", "fetch", "set5"],  # the data root is a mirror (read-only)
        ["nosuchcommand"],
        ["bench", "--profile", "demo", "--sensitivity", "--compile"],  # losses only: nothing to compile
        ["bench", "--profile", "demo", "--iterations", "600"],  # the bench's own sizes are the issue's
        ["bench", "--profile", "demo", "--sensitivity", "--size", "8"],  # out of range
    ]


@pytest.fixture
def bad_setup(tmp_path, monkeypatch):
    t = tmp_path / "t"
    photo(t / "in" / "x.jpg")
    (t / "empty").mkdir()
    (t / "notes.txt").write_text("my notes\n")
    (t / "zero.pt").write_bytes(b"")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    env = {"PERCEPTUAL_DATA_ROOT": str(mirror), "DEVICE": "cpu"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return t, mirror, env


def check_nothing_written(t: Path, mirror: Path, before: dict, where: str) -> None:
    assert snapshot(t) == before and sorted(os.listdir(t)) == ["empty", "in", "notes.txt", "zero.pt"], where
    assert not list(mirror.iterdir()), where


def test_bad_arguments_are_one_line_and_write_nothing(bad_setup, style_model, sr_model_file, capsys):
    """The whole table through ``cli.main`` (what the console script calls)."""
    t, mirror, _ = bad_setup
    before = snapshot(t)
    for args in bad_argument_table(t, style_model, sr_model_file):
        try:
            rc = cli.main(args)
        except SystemExit as exit:  # argparse
            rc = exit.code
        err = capsys.readouterr().err
        where = f"perceptual {' '.join(args)} →\n{err}"
        assert rc not in (0, None) and "Traceback" not in err and len(err.splitlines()) == 1, where
        check_nothing_written(t, mirror, before, where)


SUBPROCESS_CASES = (0, 3, 8, 12, 17, 24, 28)  # rows of the table: parse errors and run-time errors


def test_bad_arguments_in_a_real_process(bad_setup, style_model, sr_model_file):
    """A sample of the table as separate processes (exit status and stderr as a shell sees them)."""
    t, mirror, env = bad_setup
    before = snapshot(t)
    table = bad_argument_table(t, style_model, sr_model_file)
    for args in (table[i] for i in SUBPROCESS_CASES):
        r = run_cli(args, env=env, cwd=t.parent)
        where = f"perceptual {' '.join(args)} →\n{r.stderr}"
        assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, where
        check_nothing_written(t, mirror, before, where)


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch, capsys):
    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "_cmd_profile", boom)
    assert cli.main(["profile", "demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "profile", "demo"])
    with pytest.raises(ZeroDivisionError):
        cli.main(["profile", "demo", "--debug"])


# ---------------------------------------------------------------------------------------------
# 4. downloads, mirrors, docs


def test_no_connection_is_not_called_interrupted(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connection refused
    with pytest.raises(data.NoConnection, match="cannot reach 127.0.0.1.*Connection refused") as info:
        data._retrieve(f"http://127.0.0.1:{port}/a.png", "", tmp_path / "a.png", progressbar=False)
    assert "interrupted" not in str(info.value)


def test_a_mirror_data_root_is_never_written(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("PERCEPTUAL_DATA_ROOT", str(mirror))
    with pytest.raises(data.DataError, match="never written to.*unset PERCEPTUAL_DATA_ROOT"):
        data.fetch("set14")
    assert not list(mirror.iterdir())


def test_docs_name_chapters_that_exist():
    root = paths.ROOT
    for doc in ("README.md", "Makefile"):
        text = (root / doc).read_text()
        names = re.findall(r"NAME=(\w+)", text) + re.findall(r"e\.g\. (\w+)>", text)
        assert names and all(n in book.CHAPTERS for n in names), (doc, names)


def test_profile_notes_never_contradict_the_values():
    small = profiles.get("small", gpu=False)
    text = profiles.describe(small)
    generated = re.findall(r"note: no GPU, so (\S+) = (.+) \(GPU setting: (.+)\) is used instead", text)
    assert len(generated) == len(small.cpu)
    for key, value, gpu_value in generated:
        assert f"\n  {key} = {value}\n" in text + "\n"  # the value printed above is the one used
    assert all("(GPU settings)" in line for line in text.splitlines() if "4,000" in line or "10 COCO" in line)
    gpu_text = profiles.describe(profiles.get("small", gpu=True))
    assert "no GPU" not in gpu_text and "(GPU settings)" not in gpu_text and "note: 4,000 style" in gpu_text
