"""Batches that finish (issue: stylize on what people have): every bad input is one line naming it
and the batch goes on; a rerun resumes; stale temporaries go; options name what was given. And the
messages of `compare` on a damaged published table and of an unreadable checkpoint."""
import errno
import os
import re
import shutil
import struct
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from perceptual import cli
from perceptual.core import images, paths
from perceptual.method.transformer import StyleNet
from perceptual.runtime import inference, runfolder
from perceptual.tools import stylize


def photo(path, seed=0, size=(48, 56)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def model(style_model):
    """The conftest's width-8 style network."""
    return style_model


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """30000 × 30000 one-colour PNG: 900 million pixels, a few hundred kB on disk."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (30000, 30000)).save(path)
    return path


def stylize_cli(model, *args):
    return cli.main(["stylize", str(model), *map(str, args), "-q"])


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# A1: a per-image error is one line naming the input; the batch goes on; exit 1 with a count


def test_a_decompression_bomb_is_refused_by_name_and_the_batch_goes_on(tmp_path, model, bomb, capsys, recwarn):
    inputs = tmp_path / "in"
    photo(inputs / "a.png", 1)
    shutil.copy(bomb, inputs / "b_bomb.png")
    photo(inputs / "c.png", 3)
    out = tmp_path / "out"
    assert stylize_cli(model, inputs, "-o", out) == 1
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert lines(captured.out) == [str(out / "a.png"), str(out / "c.png")]
    assert err[0] == (f"failed: {inputs / 'b_bomb.png'}: 30000×30000 = 900,000,000 pixels, over the budget of "
                      f"268,435,456 (16384×16384; perceptual.core.images.MAX_PIXELS); not decoded: shrink it first")
    assert err[1:] == ["1 of 3 inputs failed (named above); the others were written"]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_other_decode_errors_are_named_and_the_batch_goes_on(tmp_path, model, capsys, monkeypatch):
    inputs = tmp_path / "in"
    photo(inputs / "a.png", 1)
    blob = photo(inputs / "b_truncated.png", 2).read_bytes()
    (inputs / "b_truncated.png").write_bytes(blob[: len(blob) // 2])
    photo(inputs / "c_exif.png", 3)
    photo(inputs / "d.png", 4)
    from PIL import ImageOps

    transpose = ImageOps.exif_transpose

    def broken_exif(im, *a, **kw):  # what Pillow has raised on malformed EXIF (not an OSError)
        if "c_exif" in str(getattr(im, "filename", "")):
            raise struct.error("unpack requires a buffer of 4 bytes")
        return transpose(im, *a, **kw)

    monkeypatch.setattr(ImageOps, "exif_transpose", broken_exif)
    out = tmp_path / "out"
    assert stylize_cli(model, inputs, "-o", out) == 1
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert lines(captured.out) == [str(out / "a.png"), str(out / "d.png")]
    assert err[0].startswith(f"failed: {inputs / 'b_truncated.png'}: not a readable image (OSError: ")
    assert err[1] == f"failed: {inputs / 'c_exif.png'}: not a readable image (struct.error: unpack requires a buffer of 4 bytes)"
    assert err[2] == "2 of 4 inputs failed (named above); the others were written"


def test_a_full_disk_fails_that_output_by_name_and_the_batch_goes_on(tmp_path, model, capsys, monkeypatch):
    inputs = tmp_path / "in"
    for i, name in enumerate("abc"):
        photo(inputs / f"{name}.jpg", i)
    save = Image.Image.save

    def full_disk(self, fp, *a, **kw):
        if os.path.basename(str(fp)).startswith(".b.png."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, fp, *a, **kw)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    out = tmp_path / "out"
    assert stylize_cli(model, inputs, "-o", out) == 1
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert lines(captured.out) == [str(out / "a.png"), str(out / "c.png")]
    assert len(err) == 2 and err[0].startswith(f"failed: {inputs / 'b.jpg'}: {out / 'b.png'}: not written, the disk "
                                               "is full (") and err[0].endswith("run the same command again")
    assert err[1] == "1 of 3 inputs failed (named above); the others were written"
    assert sorted(os.listdir(out)) == ["a.png", "c.png"]  # no temporary left behind


def test_a_name_too_long_fails_that_input_by_name_and_the_batch_goes_on(tmp_path, model, capsys):
    long = photo(tmp_path / "in" / "n.png", 1).rename(tmp_path / "in" / ("n" * 255))  # no suffix: + .png is 259
    good = photo(tmp_path / "in" / "good.png", 2)
    out = tmp_path / "out"
    assert stylize_cli(model, long, good, "-o", out) == 1
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert lines(captured.out) == [str(out / "good.png")]
    assert err[0] == (f"failed: {long}: the output name {'n' * 24}….png is 259 bytes, over the file system's 255; "
                      "rename the input (or use a shorter -o folder)")
    assert err[1] == "1 of 2 inputs failed (named above); the others were written"


# ---------------------------------------------------------------------------------------------
# A2: a stated pixel budget instead of Pillow's warning


def test_images_over_the_budget_are_refused_before_decoding_without_pillows_warning(tmp_path, model, monkeypatch):
    small, big = photo(tmp_path / "in" / "small.png", 1, (20, 20)), photo(tmp_path / "in" / "big.png", 2, (40, 40))
    before = Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(images, "MAX_PIXELS", 1000, raising=False)  # 40² = 1600: between Pillow's warning (1×) and error (2×)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        report = stylize.stylize_files(model, [small, big], tmp_path / "out", progress=False)
        with pytest.raises(images.ImageError, match=r"big.png: 40×40 = 1,600 pixels, over the budget of 1,000 \(31×31"):
            images.read_image(big)
    assert [p.name for p in report.written] == ["small.png"]
    assert report.failed == [(big, f"{big}: 40×40 = 1,600 pixels, over the budget of 1,000 (31×31; "
                                    "perceptual.core.images.MAX_PIXELS); not decoded: shrink it first")]
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's global is ours only while we read


def test_inside_our_reading_the_budget_replaces_pillows_lower_limit(tmp_path, monkeypatch):
    path = photo(tmp_path / "wide.png", 1, (40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # stands in for Pillow's default, below our budget
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert images.read_image(path).shape == (3, 40, 40)  # 1600 px: Pillow alone would warn
        assert images.is_readable(path)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    # Pillow's default errs above 2 × 89,478,485 px; the budget admits a 16384² image the tiled path can process
    assert images.MAX_PIXELS == 2 ** 28 > 2 * 89_478_485


# ---------------------------------------------------------------------------------------------
# A3: each output is printed as it is written


def test_each_output_is_printed_as_it_is_written(tmp_path, model, capsys, monkeypatch):
    inputs = tmp_path / "in"
    for i, name in enumerate("abc"):
        photo(inputs / f"{name}.png", i)
    calls = []
    real = stylize.stylize_image

    def interrupted_at_the_second(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(stylize, "stylize_image", interrupted_at_the_second)
    out = tmp_path / "out"
    assert stylize_cli(model, inputs, "-o", out) == 130
    captured = capsys.readouterr()
    assert lines(captured.out) == [str(out / "a.png")]  # printed before the interruption, not at the end
    assert lines(captured.err) == ["interrupted; run the same command again to resume"]


# ---------------------------------------------------------------------------------------------
# A4 + A5: a rerun resumes; stale temporaries of ours go


def test_a_rerun_resumes_skipping_complete_outputs_and_recomputing_incomplete_ones(tmp_path, model, capsys):
    inputs = tmp_path / "in"
    for i, name in enumerate("abc"):
        photo(inputs / f"{name}.png", i)
    out = tmp_path / "out"
    assert stylize_cli(model, inputs, "-o", out) == 0
    assert lines(capsys.readouterr().out) == [str(out / f"{n}.png") for n in "abc"]
    a_bytes = (out / "a.png").read_bytes()
    b_full = (out / "b.png").read_bytes()
    (out / "b.png").write_bytes(b_full[: len(b_full) // 2])  # cut short (not by us: a copy, an old version)
    os.utime(out / "a.png", ns=(1, 1))

    assert stylize_cli(model, inputs, "-o", out) == 0
    captured = capsys.readouterr()
    assert lines(captured.out) == [str(out / "b.png")]
    assert lines(captured.err) == [f"skipped {out / 'a.png'}: exists and is complete (--overwrite recomputes it)",
                                   f"{out / 'b.png'} exists but is not a readable image (incomplete?): recomputing it",
                                   f"skipped {out / 'c.png'}: exists and is complete (--overwrite recomputes it)",
                                   "2 existing outputs kept (complete; --overwrite recomputes them)"]
    assert (out / "a.png").read_bytes() == a_bytes and (out / "a.png").stat().st_mtime_ns == 1  # untouched
    assert (out / "b.png").read_bytes() == b_full  # recomputed whole (the same network, the same input)

    assert stylize_cli(model, inputs, "-o", out, "--overwrite") == 0
    captured = capsys.readouterr()
    assert lines(captured.out) == [str(out / f"{n}.png") for n in "abc"] and captured.err == ""
    assert (out / "a.png").stat().st_mtime_ns != 1


def test_stale_temporaries_of_ours_are_removed_at_the_start(tmp_path, model, capsys):
    inputs = tmp_path / "in"
    photo(inputs / "a.png", 1)
    photo(inputs / "sub" / "b.png", 2)
    out = tmp_path / "out"
    stale = [out / ".a.png.k3j_9x0q.tmp", out / "sub" / ".b.png.abcdefgh.tmp"]  # what a kill -9 leaves
    kept = [out / ".notes.tmp", out / ".other.png.abcdefgh.tmp", out / ".a.png.toolong99.tmp.bak"]
    for p in stale + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half an image")
    assert stylize_cli(model, inputs, "-o", out) == 0
    captured = capsys.readouterr()
    assert lines(captured.err) == [f"removed {p}, a temporary file left by an interrupted run" for p in stale]
    assert lines(captured.out) == [str(out / "a.png"), str(out / "sub" / "b.png")]
    assert not any(p.exists() for p in stale) and all(p.read_bytes() == b"half an image" for p in kept)


# ---------------------------------------------------------------------------------------------
# A6: --tile names what was given and what is valid


def test_a_tile_too_small_names_the_value_given_and_the_minimum(tmp_path, model, capsys):
    src = photo(tmp_path / "in" / "x.png")
    out = tmp_path / "out"
    fast = inference.inference_model(StyleNet(width=8))
    assert inference.default_overlap(fast) == 128 and inference.receptive_radius(fast) == 55
    for given in ("1", "128"):
        assert stylize_cli(model, src, "-o", out, "--tile", given) == 2
        err = capsys.readouterr().err
        assert err == (f"error: --tile {given}: too small for this network; tiles overlap by 128 px (twice its "
                       "receptive-field radius of 55 px, plus a 16 px blend), so use --tile 129 or more (rounded up "
                       "to a multiple of 4; e.g. --tile 512)\n")
    assert not out.exists()  # refused before any work
    with pytest.raises(SystemExit) as exit:
        stylize_cli(model, src, "-o", out, "--tile", "0")
    assert exit.value.code == 2 and "argument --tile: 0 is not a tile size" in capsys.readouterr().err
    assert stylize_cli(model, src, "-o", out, "--tile", "129") == 0


# ---------------------------------------------------------------------------------------------
# B2: compare on a damaged published table; B5: the unreadable-checkpoint message


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    """The published cpu run as both the published and the fresh one."""
    pub, fresh = tmp_path / "published", tmp_path / "results"
    shutil.copytree(paths.published_dir() / "cpu", pub / "cpu")
    shutil.copytree(paths.published_dir() / "cpu", fresh / "cpu")
    monkeypatch.setattr(paths, "published_dir", lambda: pub)
    monkeypatch.setenv("PERCEPTUAL_RESULTS", str(fresh))
    return pub / "cpu", fresh / "cpu"


def test_compare_names_a_truncated_published_table_and_what_is_missing(two_runs, capsys):
    pub, _ = two_runs
    table = pub / "superres" / "sr_summary.csv"
    text = table.read_bytes()
    table.write_bytes(text[:1200])  # cut mid-row
    assert cli.main(["compare", "--profile", "cpu"]) == 1
    assert capsys.readouterr().err == (f"error: {table}: ends in the middle of a row (truncated); restore the "
                                       "published copy (git checkout -- results/published)\n")
    table.write_bytes(b"".join(text.splitlines(keepends=True)[:4]))  # cut at a row boundary: ×4 bicubic, pixel
    assert cli.main(["compare", "--profile", "cpu"]) == 1
    assert capsys.readouterr().err == (f"error: {table}: no rows for ×4 feat, ×4 srcnn, ×8 bicubic, ×8 feat, ×8 pixel "
                                       "(its .meta.json lists them: truncated?); restore the published copy "
                                       "(git checkout -- results/published)\n")
    obj = pub / "objective" / "objective.csv"
    table.write_bytes(text)
    obj.write_text("size,image,method,iteration\n128,a.jpg,feedforward,\n")
    assert cli.main(["compare", "--profile", "cpu"]) == 1
    assert capsys.readouterr().err == (f"error: {obj}: no column objective (has size, image, method, iteration); "
                                       "restore the published copy (git checkout -- results/published)\n")


def test_an_unreadable_checkpoint_message_is_cut_at_a_word_boundary(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {"w": torch.zeros(1000)}, "meta": {}}, path)
    path.write_bytes(path.read_bytes()[:2000])  # a copy cut short
    with pytest.raises(Exception) as raw:
        torch.load(path, weights_only=True)
    full = str(raw.value).strip().splitlines()[0]
    assert len(full) > 120  # torch runs on ("… This is an internal miniz error. If you are seeing …")
    with pytest.raises(runfolder.CheckpointError) as info:
        runfolder.read_checkpoint(path)
    found = re.fullmatch(rf"{re.escape(str(path))}: not a readable checkpoint \(RuntimeError: (.*) …\)", str(info.value))
    assert found, str(info.value)
    kept = found.group(1)
    assert full.startswith(kept) and full[len(kept)] == " " and kept.endswith(".")  # whole words, a whole sentence
    assert kept.startswith("PytorchStreamReader failed reading zip archive: failed finding central directory.")
