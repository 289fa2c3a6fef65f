"""``perceptual stylize`` overlaps decoding, the network and encoding (:func:`stylize.pipeline`):
results in input order, outputs equal to the one-at-a-time path, failures confined to their item,
and ``--precision auto`` choosing int8 only where its output stays ≥ 45 dB from the float path."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from perceptual.core import images, paths
from perceptual.runtime import inference
from perceptual.tools import stylize
from test_batches import model, photo  # noqa: F401 (a fixture and a helper)


def test_results_come_in_input_order_with_stages_overlapped():
    seen, threads = [], set()

    def decode(i):
        threads.add(("decode", threading.current_thread().name))
        time.sleep(0.02 * (3 - i % 3))  # later items decode faster: order must still hold
        return i

    def compute(x):
        seen.append(("compute", x))
        if x == 2:
            raise images.ImageError("item 2 is bad")
        return x * 10

    def encode(i, out):
        threads.add(("encode", threading.current_thread().name))
        if i == 4:
            raise OSError(28, "No space left on device")
        time.sleep(0.01)
        return out + 1

    results = list(stylize.pipeline(range(6), decode, compute, encode))
    assert [i for i, _ in results] == list(range(6))
    assert [r for i, r in results if not isinstance(r, BaseException)] == [1, 11, 31, 51]
    assert isinstance(results[2][1], images.ImageError) and isinstance(results[4][1], OSError)
    assert {t for t, _ in threads} == {"decode", "encode"}
    assert all(name.startswith(kind) for kind, name in threads)  # off the main thread


def test_an_unexpected_error_still_reports_the_finished_writes_then_propagates():
    written = []

    def compute(x):
        if x == 2:
            raise KeyboardInterrupt
        return x

    gen = stylize.pipeline(range(5), lambda i: i, compute, lambda i, out: written.append(i) or i)
    got = []
    with pytest.raises(KeyboardInterrupt):
        for item in gen:
            got.append(item)
    assert [i for i, _ in got] == [0, 1] and written == [0, 1]


def test_the_pipeline_writes_what_the_sequential_path_computes(tmp_path, model):  # noqa: F811
    inputs = [photo(tmp_path / "in" / f"{k}.png", k, size=(40 + 8 * k, 56)) for k in range(4)]
    report = stylize.stylize_files(model, inputs, tmp_path / "out", device="cpu", precision="fp32", progress=False)
    assert [p.name for p in report.written] == ["0.png", "1.png", "2.png", "3.png"] and report.precision == "fp32"
    net, _ = stylize.load_style_model(model, torch.device("cpu"))
    fast = inference.inference_model(net, "cpu", "fp32")
    for src, out in zip(inputs, report.written):
        expected = images.to_uint8(stylize.stylize_image(fast, images.read_image(src), False, False, None, 1.0, "fp32"))
        assert (images.to_uint8(images.read_image(out)) == expected).all()  # identical, pixel for pixel
        data = out.read_bytes()
        idat = data.index(b"IDAT") + 4  # the zlib stream: its FLEVEL bits say which level wrote it
        assert data[idat + 1] >> 6 == 0  # "fastest" (level 1: SAVE_ARGS); Pillow's default 6 writes 2


def test_auto_picks_int8_only_at_45_db_and_remembers_the_check(tmp_path, model, monkeypatch):  # noqa: F811
    net, _ = stylize.load_style_model(model, torch.device("cpu"))
    if not inference.int8_supported(torch.device("cpu")):
        pytest.skip("no VNNI int8 kernels on this CPU")
    prec, psnr = inference.auto_precision(net, torch.device("cpu"))
    assert (prec == "int8") == (psnr >= inference.AUTO_INT8_DB) and 20 < psnr < 100
    assert (paths.cache_dir() / "inference-precision.json").is_file()
    monkeypatch.setattr(inference, "quantize_residuals", lambda *a: pytest.fail("checked again"))
    assert inference.auto_precision(net, torch.device("cpu")) == (prec, psnr)  # remembered
    monkeypatch.setattr(inference, "AUTO_INT8_DB", psnr + 1)
    assert inference.auto_precision(net, torch.device("cpu"))[0] == inference.resolve("auto", "cpu", inference=True)


def test_prefetch_keeps_order_raises_where_it_failed_and_stops_when_left():
    from perceptual.runtime.batches import prefetch

    made = []

    def batches(n, bad=None):
        for i in range(n):
            if i == bad:
                raise images.ImageError(f"batch {i} is unreadable")
            made.append(i)
            yield i

    assert list(prefetch(batches(20))) == list(range(20))
    got = []
    with pytest.raises(images.ImageError, match="batch 3"):
        for b in prefetch(batches(10, bad=3)):
            got.append(b)
    assert got == [0, 1, 2]
    made.clear()
    for b in prefetch(batches(1000)):
        if b == 5:
            break
    time.sleep(0.3)
    assert len(made) <= 5 + 1 + 2 + 1  # stopped: at most the queue's depth ahead


def test_the_command_exits_at_once_with_its_code_and_its_output_flushed(tmp_path):
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "perceptual.cli", "profile", "demo"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("profile 'demo'") and ok.stdout.endswith("\n")
    bad = subprocess.run([sys.executable, "-m", "perceptual.cli", "stylize", str(tmp_path / "none.pt"),
                          str(tmp_path), "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and "none.pt" in bad.stderr


def test_the_cli_bench_reads_the_pace_from_the_times_work_finished(tmp_path):
    import pandas as pd

    from perceptual.book import pages
    from perceptual.study.chapters.speed import _pace

    done = [100.0 + t for t in (3.0, 4.5, 5.0, 5.5, 6.1, 6.6, 7.1)]  # unsorted input is sorted first
    pace = _pace(98.0, list(reversed(done)))
    assert pace["first_seconds"] == pytest.approx(5.0)  # launch at 98, first done at 103
    assert pace["steady_unit_seconds"] == pytest.approx(0.5)  # gaps after 3 warm-up units: 0.6, 0.5, 0.5
    row = {"command": "train-style", "work": "40 iterations", "units": 40, "precision": "bf16", "psnr_db": None,
           "unit_seconds": 0.65, "cold_seconds": 36.0, "seconds": 33.6, **pace, "bound_seconds": 29.0,
           "met": False, "hardware": "a CPU"}
    pd.DataFrame([row]).to_csv(tmp_path / "cli.csv", index=False)
    cells = pages.cli_table(tmp_path / "cli.csv").rows[0]
    assert "5.0 s to the first iteration, then 0.5 s per iteration" in cells and "0.65 s per iteration (bf16)" in cells
    old = pd.DataFrame([{k: v for k, v in row.items() if k not in pace}])  # written before the pace was recorded
    old.to_csv(tmp_path / "old.csv", index=False)
    assert "inside the process" not in pages.cli_table(tmp_path / "old.csv").header
