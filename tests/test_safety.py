"""Model and checkpoint files run no code and are checked before anything is allocated.

A planted pickle (an object whose ``__reduce__`` calls ``os.system``) in a model's metadata must be
refused, unread, by every command that opens model files: stylize, export, resuming training,
publishing, and the book's metadata reader. The marker file its command would create must not
appear; the exit is non-zero and the message one line naming the file."""
from __future__ import annotations

import os
import resource
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from perceptual import cli
from perceptual.core import demo, images, store
from perceptual.core.config import PAPER
from perceptual.method import train
from perceptual.method.transformer import StyleNet
from perceptual.study import published


class Planted:
    """Runs ``touch <marker>`` when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _model(width: int = 4) -> tuple[dict, dict]:
    torch.manual_seed(0)
    net = StyleNet(padding="zero", width=width)
    return net.state_dict(), {"kind": "style", "arch": net.arch, "style": "t", "config_hash": "t"}


def planted_model(folder: Path, name: str = "model.pt", **extra) -> tuple[Path, Path]:
    marker = folder / "PWNED"
    state, meta = _model()
    path = folder / name
    torch.save({"model": state, "meta": {**meta, "provenance": Planted(marker)}, **extra}, path)
    return path, marker


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return demo.materialize(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "in" / "photo.png"
    images.write_image(torch.full((3, 40, 40), 128.0), path)  # (3, H, W)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("error")]
    assert len(lines) == 1, err
    return lines[0]


def test_stylize_refuses_a_planted_model_unread(tmp_path, photo, capsys):
    model, marker = planted_model(tmp_path)
    assert cli.main(["stylize", str(model), str(photo), "-o", str(tmp_path / "out")]) != 0
    assert not marker.exists()
    line = one_error_line(capsys)
    assert str(model) in line and "system" in line and "could run code" in line
    assert not list((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True


def test_export_refuses_a_planted_model_unread(tmp_path, capsys):
    model, marker = planted_model(tmp_path)
    assert cli.main(["export", str(model), str(tmp_path / "m.onnx")]) != 0
    assert not marker.exists() and "could run code" in one_error_line(capsys)


def test_resuming_refuses_a_planted_checkpoint_unread(tmp_path, capsys, demo_root):
    run = tmp_path / "run"
    run.mkdir()
    _, marker = planted_model(run, "checkpoint.pt", optimizer={}, rng=torch.get_rng_state(), iteration=1)
    root = demo_root
    code = cli.main(["train-style", "--style", str(root / demo.STYLE_FILE), "--data", str(root / "train/demo"),
                     "--out", str(run), "--iterations", "2", "--image-size", "64", "--batch-size", "1",
                     "--loss-network", "random", "--device", "cpu"])
    assert code != 0 and not marker.exists()
    line = one_error_line(capsys)
    assert "checkpoint.pt" in line and "could run code" in line


def test_publishing_and_the_books_metadata_reader_refuse_a_planted_model(tmp_path):
    model, marker = planted_model(tmp_path)
    with pytest.raises(store.UnsafeFile, match="could run code") as info:
        published._fp16_model(model, tmp_path / "out.pt")
    assert "\n" not in str(info.value) and not (tmp_path / "out.pt").exists()
    with pytest.raises(store.UnsafeFile):
        store.read_meta_or_none(model)  # what the methods chapter reads from published models
    assert not marker.exists()


def test_the_projects_own_files_load_weights_only():
    """Every published network (written by earlier versions, with torch's TorchVersion in the
    provenance) loads through the one safe reader."""
    files = sorted(Path(store.paths.published_dir()).rglob("*.pt"))
    assert files, "no published networks to check"
    for path in files:
        meta = store.read_meta_or_none(path)
        assert meta["kind"] in ("style", "sr", "srcnn")
        train.load_model(path)  # checked: shapes, finite weights


def test_new_files_store_plain_strings():
    assert type(store.hardware("cpu")["torch"]) is str


def test_nan_weights_are_refused_by_name(tmp_path, photo, capsys):
    state, meta = _model()
    state["res.0.conv1.weight" if "res.0.conv1.weight" in state else next(iter(state))][0].fill_(float("nan"))
    path = tmp_path / "nan.pt"
    torch.save({"model": state, "meta": meta}, path)
    assert cli.main(["stylize", str(path), str(photo), "-o", str(tmp_path / "out")]) != 0
    line = one_error_line(capsys)
    assert "nan.pt" in line and "NaN or infinite" in line


def test_a_declared_size_is_checked_before_allocating(tmp_path, monkeypatch):
    state, meta = _model()
    path = tmp_path / "wide.pt"
    torch.save({"model": state, "meta": {**meta, "arch": {**meta["arch"], "width": 1000}}}, path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(ValueError, match="do not match|shape"):
        train.load_model(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1_000_000  # < 1 GB (width 1000: 7 GB)
    monkeypatch.setattr(train.memory, "machine_bytes", lambda device: (1024, "this machine's RAM"))
    torch.save({"model": state, "meta": meta}, path)  # a real file whose network outgrows a 1 KiB machine
    with pytest.raises(ValueError, match="more than a quarter of this machine's RAM"):
        train.load_model(path)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    def full(obj, f, *a, **kw):
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 4096 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(store.DiskFull) as info:
        store.atomic_torch_save({"x": 1}, tmp_path / "checkpoint.pt")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'checkpoint.pt'}: not written, the disk is full (") and "MiB free" in text
    assert "\n" not in text and not list(tmp_path.iterdir())  # the temporary is gone


def test_a_temporary_name_stays_within_the_name_limit(tmp_path):
    path = tmp_path / ("x" * 245 + ".png")
    store.atomic_write_text(path, "ok")
    assert path.read_text() == "ok"


def test_a_full_disk_while_checkpointing_goes_to_train_log(tmp_path, monkeypatch, demo_root):
    cfg = replace(PAPER.style, iterations=2, checkpoint_every=1, batch_size=1, val_images=0)
    data = train.SquareImages(sorted((demo_root / "train/demo").iterdir())[:2], 32, "warp")
    real = torch.save

    def full(obj, f, *a, **kw):
        if "optimizer" in obj:
            raise OSError(28, "No space left on device")
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(store.DiskFull):
        train.fit(StyleNet(padding="zero", width=4), lambda m, b: {"total": m(b).mean()}, data, cfg,
                  run_dir=tmp_path, meta={"config_hash": "t"}, options=train.FitOptions(progress=False))
    log = (tmp_path / "train.log").read_text()
    assert "checkpoint.pt: not written, the disk is full" in log
