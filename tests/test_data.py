"""Dataset registry, verified and resumable downloads (loopback server), the data root, demo data."""
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perceptual.core import data, demo, paths

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _png(path: Path, seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (200, 300, 3), dtype=np.uint8)  # ≈180 kB
    Image.fromarray(arr).save(path)
    return path.read_bytes()


@pytest.fixture
def registry(tmp_path, file_server, monkeypatch):
    """A private registry of small datasets served from the loopback server."""
    tables = tmp_path / "tables"
    (tables / "files").mkdir(parents=True)
    served = file_server.root
    a, b = _png(served / "a.png", 1), _png(served / "b.png", 2)
    sha = lambda blob: "sha256:" + hashlib.sha256(blob).hexdigest()  # noqa: E731
    (tables / "files" / "tiny.tsv").write_text(
        f"path\turl\thash\nsub/a.png\t{file_server.url}/a.png\t{sha(a)}\nb.png\t{file_server.url}/b.png\t{sha(b)}\n")
    (tables / "files" / "bad.tsv").write_text(f"path\turl\thash\na.png\t{file_server.url}/a.png\tsha256:{'0' * 64}\n")
    (tables / "files" / "gone.tsv").write_text(f"path\turl\thash\nz.png\t{file_server.url}/missing.png\t\n")
    Image.fromarray(np.full((8, 8, 3), 77, np.uint8)).save(served / "c.jpg", quality=95)
    pix = "pixels:" + data.pixel_hash(served / "c.jpg")
    (tables / "files" / "conv.tsv").write_text(f"path\turl\thash\nc.png\t{file_server.url}/c.jpg\t{pix}\n")
    with zipfile.ZipFile(served / "arch.zip", "w") as z:
        z.write(served / "a.png", "arch/x/a.png")
        z.write(served / "b.png", "arch/b.png")
    md5 = "md5:" + hashlib.md5((served / "arch.zip").read_bytes()).hexdigest()
    (tables / "datasets.tsv").write_text(
        "name\tkind\tfolder\tcount\tsize_mb\turl\thash\tlicence\tdescription\n"
        "tiny\tfiles\tsets/tiny\t2\t0\tfiles/tiny.tsv\t\tnone\ttwo pngs\n"
        "bad\tfiles\tsets/bad\t1\t0\tfiles/bad.tsv\t\tnone\twrong hash\n"
        "gone\tfiles\tsets/gone\t1\t0\tfiles/gone.tsv\t\tnone\t404\n"
        "conv\tfiles\tsets/conv\t1\t0\tfiles/conv.tsv\t\tnone\tjpeg stored as png\n"
        f"arch\tarchive\tsets/arch\t2\t0\t{file_server.url}/arch.zip\t{md5}\tnone\tzip\n"
        "local\tmirror\tlocal\t1\t0\t\t\tnone\tmirror only\n")
    monkeypatch.setattr(paths, "tables_dir", lambda: tables)
    monkeypatch.setenv("PERCEPTUAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "root"


def test_registry_table_is_complete():
    reg = data.registry()
    for name in ("set5", "set14", "bsd100", "styles", "content", "coco-val2014", "coco-train2014", "train-standin"):
        assert name in reg
    for ds in reg.values():
        assert ds.licence and ds.description and ds.count > 0
        if ds.kind == "files":
            files = ds.files()
            assert len(files) == ds.count
            assert all(u.startswith("https://") and (h.startswith("sha256:") or h.startswith("pixels:"))
                       for _, u, h in files)
        if ds.kind == "archive":
            assert ds.url.startswith("http") and ds.hash.startswith(("md5:", "sha256:"))


def test_good_download_verifies(registry):
    folder = data.fetch("tiny", registry, progressbar=False)
    assert sorted(p.relative_to(folder).as_posix() for p in data.list_images(folder)) == ["b.png", "sub/a.png"]
    status = {r["dataset"]: r for r in data.status(registry, check_hashes=True)}
    assert status["tiny"]["status"] == "present" and status["tiny"]["corrupt"] == 0
    # a second fetch verifies and downloads nothing
    data.fetch("tiny", registry, progressbar=False)


def test_archive_download_extracts(registry, file_server):
    folder = data.fetch("arch", registry, progressbar=False)
    assert (folder / "x" / "a.png").read_bytes() == (file_server.root / "a.png").read_bytes()
    assert (folder / "b.png").is_file()
    assert not list(folder.parent.glob(".arch.extracting"))


def test_converted_file_checked_by_pixels(registry):
    folder = data.fetch("conv", registry, progressbar=False)
    assert (folder / "c.png").is_file() and Image.open(folder / "c.png").format == "PNG"


def test_checksum_mismatch_leaves_nothing(registry):
    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.fetch("bad", registry, progressbar=False)
    assert not (registry / "sets" / "bad" / "a.png").exists()
    assert not list((paths.cache_dir() / "partial").glob("*.part"))
    assert not list((registry / "sets" / "bad").glob("*")) if (registry / "sets" / "bad").exists() else True


def test_404_is_a_clear_error(registry):
    with pytest.raises(data.DataError, match="HTTP 404"):
        data.fetch("gone", registry, progressbar=False)
    assert not (registry / "sets" / "gone" / "z.png").exists()


def test_interrupted_transfer_resumes(registry, file_server):
    file_server.truncate["a.png"] = 100_000
    with pytest.raises(data.DataError, match="interrupted"):
        data.fetch("tiny", registry, progressbar=False)
    target = registry / "sets" / "tiny" / "sub" / "a.png"
    assert not target.exists()  # no corrupt file in place
    parts = list((paths.cache_dir() / "partial").glob("*.part"))
    kept = parts[0].stat().st_size if len(parts) == 1 else -1
    assert 0 < kept <= 100_000  # whole chunks received before the cut are kept
    data.fetch("tiny", registry, progressbar=False)
    assert data.verify(target, "sha256:" + hashlib.sha256((file_server.root / "a.png").read_bytes()).hexdigest())
    assert ("a.png", f"bytes={kept}-") in file_server.requests  # continued, not restarted
    assert not list((paths.cache_dir() / "partial").glob("*.part"))


def test_mirror_only_and_unknown(registry):
    with pytest.raises(data.DataError, match="local mirror"):
        data.fetch("local", registry)
    with pytest.raises(data.DataError, match="unknown dataset"):
        data.get("nope")


def test_data_root_overrides_and_missing_is_named(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "sr" / "Set5").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(mirror / "sr" / "Set5" / "x.png")
    monkeypatch.setenv("PERCEPTUAL_DATA_ROOT", str(mirror))
    assert paths.data_root() == mirror.resolve() and paths.data_root_is_mirror()
    assert data.require("set5") == mirror.resolve() / "sr" / "Set5"
    with pytest.raises(data.DataMissing) as err:
        data.require("set14")
    assert "set14" in str(err.value) and "perceptual data fetch set14" in str(err.value)
    with pytest.raises(data.DataMissing, match="local mirror"):
        data.require("train-standin")


def test_demo_data_offline(tmp_path):
    root = demo.materialize(tmp_path / "demo")
    assert len(data.list_images(root / "train" / "demo")) == len(demo.TRAIN)
    assert len(data.list_images(root / "content" / "demo")) == len(demo.CONTENT)
    assert not set(demo.TRAIN) & set(demo.CONTENT)  # train and evaluation images are disjoint
    style = root / demo.STYLE_FILE
    assert Image.open(style).size == (384, 384)
    again = demo.materialize(tmp_path / "demo2")
    assert (again / demo.STYLE_FILE).read_bytes() == style.read_bytes()  # deterministic


@pytest.mark.skipif(not (SHARED / "MANIFEST.tsv").is_file(), reason="no ../shared/data beside the checkout")
def test_shared_mirror_status(monkeypatch):
    monkeypatch.setenv("PERCEPTUAL_DATA_ROOT", str(SHARED))
    rows = {r["dataset"]: r for r in data.status()}
    for name in ("set5", "set14", "bsd100", "styles", "content", "coco-val-sample", "train-standin"):
        assert rows[name]["status"] == "present", rows[name]
    # benchmark files verified by hash (byte hashes for Set5/14, decoded pixels for BSD100)
    for name in ("set5", "set14", "bsd100"):
        folder = data.get(name).path()
        assert all(data.verify(folder / rel, h) for rel, _, h in data.get(name).files())


def test_check_hashes_lists_each_corrupt_file_and_exits_non_zero(registry, capsys):
    from perceptual import cli

    folder = data.fetch("tiny", progressbar=False)  # into the download cache (no PERCEPTUAL_DATA_ROOT)
    assert cli.main(["data", "status", "--check-hashes"]) == 0
    capsys.readouterr()
    bad = folder / "sub" / "a.png"
    expected = data.file_hash(bad)
    bad.write_bytes(bad.read_bytes()[:-10] + b"0123456789")  # damaged in place
    actual = data.file_hash(bad)
    assert cli.main(["data", "status", "--check-hashes"]) == 1
    out, err = capsys.readouterr()
    assert f"    corrupt: sets/tiny/sub/a.png  expected sha256:{expected[:12]}…, found sha256:{actual[:12]}…\n" in out
    assert out.count("corrupt:") == 1 and "  tiny " in out and " corrupt " in out
    assert err == ("error: 1 corrupt file in tiny (listed above); `perceptual data fetch tiny` downloads them again\n")
    assert cli.main(["data", "fetch", "tiny"]) == 0  # what the message says mends it
    assert data.file_hash(bad) == expected
    assert cli.main(["data", "status", "--check-hashes"]) == 0


def test_a_data_root_that_does_not_exist_is_named(tmp_path, monkeypatch, capsys):
    from perceptual import cli

    typo = tmp_path / "shraed" / "data"
    monkeypatch.setenv("PERCEPTUAL_DATA_ROOT", str(typo))
    assert cli.main(["data", "status"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"error: PERCEPTUAL_DATA_ROOT={typo}: the data root does not exist; correct the path, or unset "
                   f"PERCEPTUAL_DATA_ROOT to use the download cache ({paths.cache_dir() / 'data'})\n")
    with pytest.raises(data.DataMissing, match="PERCEPTUAL_DATA_ROOT=.*shraed/data: the data root does not exist"):
        data.require("set5")
    typo.parent.mkdir()
    typo.write_text("")
    with pytest.raises(data.DataRootMissing, match="the data root is not a folder"):
        data.status()
