"""The book's plumbing: tables for people, the provenance box, one parameters cell, offline checks."""
from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

from perceptual.book import site as book, pages, report, paper_tables
from perceptual.study import experiments, profiles
from perceptual.core import store


@pytest.mark.parametrize("value, text", [
    (1057.333, "1,057"), (0.071596, "0.0716"), (212.0, "212"), (9.996, "10.0"), (0.015, "0.0150"),
    (3.17, "3.17"), (123456.7, "123,457"), (np.int64(1024), "1,024"), (7, "7"), (0.0, "0"),
    (float("nan"), "—"), (None, "—"), (2.5e-7, "2.50e-07"), (-0.5, "-0.500"), ("x", "x"),
])
def test_number_rounds_to_significant_figures(value, text):
    assert pages.number(value) == text


def test_table_has_no_index_units_in_headers_and_explains_missing_values():
    frame = pd.DataFrame({"size": [256, 512], "t": [0.0153, math.nan], "note": ["a", "b"]}, index=[7, 9])
    t = pages.table(frame, {"size": "size (px)", "t": "time (s)"}, missing="not timed at 512²")
    assert t.header == ["size (px)", "time (s)"]
    assert t.rows == [["256", "0.0153"], ["512", "—"]]  # no index values 7, 9; 'note' not selected
    assert t.notes == ["— not timed at 512²."]
    html = t._repr_html_()
    assert "<th>time (s)</th>" in html and "<td class='num'>—</td>" in html and ">7<" not in html
    assert pages.table(frame, {"t": "t"}, formats={"t": ".1f"}).rows == [["0.0"], ["—"]]
    assert pages.table(frame.dropna(), {"size": "s"}).notes == []  # nothing missing, no footnote
    noted = pages.table(frame.dropna(), {"size": "s"}, notes=["run `perceptual bench` <here>"])._repr_html_()
    assert "run <code>perceptual bench</code> &lt;here&gt;" in noted  # code spans, the rest escaped
    with pytest.raises(KeyError, match="no column 'speed'"):
        pages.table(frame, {"speed": "x"})


def test_table_flattens_multiindex_columns():
    frame = pd.DataFrame([[30.123, 0.91234]], columns=pd.MultiIndex.from_tuples([("psnr", "feat"), ("ssim", "feat")]))
    assert pages.table(frame).header == ["psnr · feat", "ssim · feat"]
    assert pages.table(frame).rows == [["30.1", "0.912"]]


def test_settings_vs_paper_lists_only_differences():
    demo = profiles.get("demo", gpu=False)
    rows = {r[0]: r[1:] for r in pages.settings_vs_paper(demo).rows}
    assert rows["style.iterations"] == ["40,000", "250"]
    assert rows["style.image_size"] == ["256", "96"]
    assert rows["fig5_sizes"] == ["256, 512, 1024", "64, 128"]
    assert rows["style.loss.tv_weight"] == ["1e-06", "1e-05"]
    assert "style.loss.content_layers" not in rows  # equal in both
    assert "notes" not in rows and "description" not in rows
    assert pages.settings_vs_paper(profiles.PROFILES["paper"]).rows == []


def test_made_by_box_comes_from_the_meta_file(tmp_path, monkeypatch):
    ctx = experiments.Context.create(profiles.get("demo", gpu=False), "cpu")
    meta = store.provenance(None, 0, "vgg19-caffe", "cpu", profile="demo", data_root="/data")
    meta.update(code_version="abc1234", compute_seconds=125.0,
                hardware={"cpu": "Test CPU", "cpu_threads": 2, "device": "cpu", "torch": "2.x", "python": "3.x"})
    table = store.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv", meta)
    rows = dict(pages.made_by_rows("objective", ctx, [table]))
    assert rows["Code version"] == "abc1234" and rows["Loss network"] == "vgg19-caffe"
    assert rows["Hardware"].startswith("Test CPU (2 threads); device cpu")
    assert "computed in 2 min" in rows["Results"]
    assert rows["Regenerate"] == "make chapter NAME=objective PROFILE=demo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what a GPU's record says of float32
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91900)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)  # PyTorch's default
    gpu = store.hardware("cuda")
    assert (gpu["tf32_convolutions"], gpu["tf32_matmul"]) == (True, torch.backends.cuda.matmul.allow_tf32)
    assert pages._machine(gpu).startswith(f"NVIDIA H100 80GB HBM3 (CUDA {torch.version.cuda}, float32 convolutions "
                                          "in TF32), ")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert "TF32" not in pages._machine(store.hardware("cuda"))
    assert rows["Profile"].startswith("demo — ")
    html = pages.made_by("objective", ctx, [table]).data
    assert html.startswith("<details class='made-by'><summary>How this page was made</summary>")
    assert "<code>make chapter NAME=objective PROFILE=demo</code>" in html
    monkeypatch.setenv("PERCEPTUAL_DATA_ROOT", str(tmp_path))
    assert pages.command("speed", "small") == "make chapter NAME=speed PROFILE=small DATA_ROOT=…"


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    return nb


def test_one_parameters_cell_shows_with_the_injected_values():
    nb = _notebook(('profile = "demo"      # demo | small | paper\ndevice = "auto"\nseed = 0', ["parameters", "hide-input"]),
                   ('# Parameters\nprofile = "small"\ndevice = "cuda:1"\n', ["injected-parameters"]),
                   ("x = 1", []))
    book.show_parameters(nb)
    assert nb.cells[0].source == 'profile = "small"      # demo | small | paper\ndevice = "cuda:1"\nseed = 0'
    assert nb.cells[0].metadata["tags"] == ["parameters", "hide-input"]
    assert "remove-cell" in nb.cells[1].metadata["tags"]  # still in the notebook, not on the page
    assert nb.cells[2].metadata["tags"] == []
    plain = _notebook(("a = 1", ["parameters"]))
    book.show_parameters(plain)  # nothing injected: unchanged
    assert plain.cells[0].source == "a = 1"


def test_parameters_injects_only_what_differs(monkeypatch):
    monkeypatch.delenv("PERCEPTUAL_RESULTS")
    assert book.parameters("small", None) == {"profile": "small", "device": "auto"}
    monkeypatch.setenv("PERCEPTUAL_DATA_ROOT", "/mirror")
    assert book.parameters("small", "cpu")["data_root"] == "/mirror"
    monkeypatch.setenv("PERCEPTUAL_RESULTS", "/elsewhere")
    assert book.parameters("small", "cpu")["results"] == "/elsewhere"


def test_reference_outputs_are_matched_by_content_and_style_name():
    refs = [Path(p) for p in ("r/eccv16/chicago_la_muse.jpg", "r/hoovertowernight_la_muse_eccv.jpg",
                              "r/chicago_wave.jpg", "r/amber-rain-princess.jpg", "r/chicago_candy.jpg",
                              "r/unknown_la_muse.jpg")]
    contents = {"chicago": Path("c/chicago.jpg"), "hoovertowernight": Path("c/hoovertowernight.jpg"),
                "amber": Path("c/amber.jpg")}
    styles = ("s/la_muse.jpg", "s/wave_crop.jpg", "s/rain-princess-cropped.jpg")
    got = [(r.name, c.name, s) for r, c, s in experiments.match_references(refs, contents, styles)]
    assert got == [("chicago_la_muse.jpg", "chicago.jpg", "s/la_muse.jpg"),
                   ("hoovertowernight_la_muse_eccv.jpg", "hoovertowernight.jpg", "s/la_muse.jpg"),
                   ("chicago_wave.jpg", "chicago.jpg", "s/wave_crop.jpg"),
                   ("amber-rain-princess.jpg", "amber.jpg", "s/rain-princess-cropped.jpg")]


def test_reference_outputs_without_a_reference_folder_is_an_empty_table():
    ctx = experiments.Context.create(profiles.get("demo", gpu=False), "cpu")
    table = experiments.reference_outputs(ctx)
    assert pd.read_csv(table).empty and list(pd.read_csv(table).columns)[:2] == ["style", "content"]


def test_check_html_flags_anything_loaded_from_the_internet(tmp_path):
    for chapter in book.CHAPTERS:
        (tmp_path / f"{chapter}.html").write_text("<html><body><a href='https://arxiv.org'>paper</a></body></html>")
    assert book.check_html(tmp_path) == []  # a link is not a load
    (tmp_path / "intro.html").write_text(
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
        '<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Lato"><script src="_static/x.js"></script>')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "a.css").write_text("@import url('https://fonts.googleapis.com/css2?family=X');")
    assert sorted(book.check_html(tmp_path)) == [
        "_static/a.css: loads https://fonts.googleapis.com/css2?family=X from the internet",
        "intro.html: loads //fonts.googleapis.com/css?family=Lato from the internet",
        "intro.html: loads https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js from the internet"]


def test_stage_mathjax_copies_the_tex_chtml_files(tmp_path, monkeypatch):
    src = tmp_path / "mj"
    for rel in ("MathJax.js", "config/TeX-AMS_CHTML.js", "config/TeX-AMS_SVG.js", "jax/output/CommonHTML/jax.js",
                "jax/output/SVG/jax.js", "fonts/HTML-CSS/TeX/woff/Main.woff", "fonts/HTML-CSS/TeX/otf/Main.otf"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    monkeypatch.setenv("PERCEPTUAL_MATHJAX", str(src))
    assert book.stage_mathjax(tmp_path / "out") == str(src)
    copied = sorted(str(p.relative_to(tmp_path / "out" / "mathjax")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert copied == ["MathJax.js", "config/TeX-AMS_CHTML.js", "fonts/HTML-CSS/TeX/woff/Main.woff",
                      "jax/output/CommonHTML/jax.js"]
    monkeypatch.setenv("PERCEPTUAL_MATHJAX", str(tmp_path / "none"))
    monkeypatch.setattr(book, "MATHJAX_DEFAULT", tmp_path / "none")
    monkeypatch.setattr(book, "_pip_mathjax", lambda: None)
    assert book.stage_mathjax(tmp_path / "out2") is None and not (tmp_path / "out2").exists()


def test_mathjax_comes_from_the_python_dependency_without_debians(monkeypatch, tmp_path):
    """A fresh machine (no libjs-mathjax): the copy in the jupyter-server-mathjax wheel serves."""
    monkeypatch.delenv("PERCEPTUAL_MATHJAX", raising=False)
    monkeypatch.setattr(book, "MATHJAX_DEFAULT", tmp_path / "none")
    src = book.mathjax_source()
    assert src is not None and src.parts[-2:] == ("jupyter_server_mathjax", "static")
    assert book.mathjax_config(src) == "TeX-AMS-MML_HTMLorMML-full"
    assert book.stage_mathjax(tmp_path / "out") == str(src)
    staged = tmp_path / "out" / "mathjax"
    assert (staged / "config/TeX-AMS-MML_HTMLorMML-full.js").is_file() and (staged / "jax/input/TeX").is_dir()
    assert any((staged / "fonts/HTML-CSS/STIX-Web/woff").rglob("*.woff"))


def test_compute_records_the_time_only_when_it_computed(tmp_path, monkeypatch):
    calls = []

    def step(ctx, progress=True):
        table = tmp_path / "x.csv"
        if not calls:
            store.write_table(pd.DataFrame({"a": [1]}), table, store.provenance())
        calls.append(1)
        return table

    monkeypatch.setitem(experiments.STEPS, "speed", step)
    table = book.compute(None, "speed")
    assert json.loads(store.meta_path(table).read_text())["compute_seconds"] >= 0
    meta = store.read_meta(table)
    del meta["compute_seconds"]
    meta["created"] = "2000-01-01T00:00:00+00:00"  # a cached result from an earlier run
    store.atomic_write_text(store.meta_path(table), json.dumps(meta))
    book.compute(None, "speed")
    assert "compute_seconds" not in store.read_meta(table)
    assert book.compute(None, "intro") is None


@pytest.mark.parametrize("grams_ratio, sentence", [
    (1.004, "move it by at most 1.0 %, within the loss agreement's 3 %: the agreement can resolve"),
    (1.043, "move it by up to 4.3 %, more than the loss agreement's 3 %: the agreement cannot tell")])
def test_sensitivity_verdict_follows_from_the_float32_noise(tmp_path, grams_ratio, sentence):
    rows = [{"variant": v, "transformation_net": p, "loss_net": p, "channels_last": cl, "iterations": 200,
             "final_loss": 500_000 * r, "ratio": r, "hardware": "2-core CPU"}
            for v, p, cl, r in (("fp32-nchw", "fp32", False, 1.0), ("fp32", "fp32", True, 1.01),
                                ("fp32-grams-cl", "fp32", True, grams_ratio), ("bf16", "bf16", True, 0.962))]
    path = store.write_table(pd.DataFrame(rows), tmp_path / "sensitivity.csv", {"summary": "s", "code_version": "x"})
    t = pages.sensitivity_table(path)
    assert [r[-1] for r in t.rows] == ["1.000", "1.010", f"{grams_ratio:.3f}", "0.962"] and t.rows[0][2] == "NCHW"
    assert [r[1] for r in t.rows] == ["fp32 / fp32", "fp32 / fp32", "fp32 / fp32", "bf16 / bf16"]
    assert sentence in t.notes[-1] and t.notes[-1].endswith("bf16, as the fast path runs it, moved it by 3.8 %.")
    assert "after 200 iterations" in t.caption  # bf16's 3.8 % is not the noise: only float32 runs count


def test_the_first_steps_gradient_error_is_shown_with_its_scale(tmp_path):
    """Tables with gradient columns show each run's first-step gradient error in per cent, and a
    note with the float32 runs' largest, the fast path's and the two batches' spread; the rule
    stays the last note. Older tables (no such columns) are shown as before."""
    rows = [{"variant": v, "transformation_net": p, "loss_net": p, "channels_last": cl, "iterations": 200,
             "final_loss": 500_000 * r, "ratio": r, "hardware": "2-core CPU", "grad_error": g, "batch_spread": 0.8}
            for v, p, cl, r, g in (("fp32-nchw", "fp32", False, 1.0, 0.0), ("fp32", "fp32", True, 1.01, 0.00138),
                                   ("fp32-grams-cl", "fp32", True, 1.04, 0.00057), ("bf16", "bf16", True, 0.97, 0.0583))]
    path = store.write_table(pd.DataFrame(rows), tmp_path / "sensitivity.csv", {"summary": "s", "code_version": "x"})
    t = pages.sensitivity_table(path)
    assert [r[t.header.index("gradient error, step 1")] for r in t.rows] == ["0 %", "0.138 %", "0.057 %", "5.83 %"]
    assert t.notes[1].endswith("Float32 runs: at most 0.138 %; bf16, as the fast path runs it, 5.83 %; the "
                               "gradients of the first and the last of those batches are 80 % apart.")
    assert "(mean over the first 2 batches)" in t.notes[1]
    assert t.notes[-1].startswith("Rule:")
    older = store.write_table(pd.DataFrame(rows).drop(columns=["grad_error", "batch_spread"]), tmp_path / "old.csv",
                              {"summary": "s", "code_version": "x"})
    old = pages.sensitivity_table(older)
    assert "gradient error, step 1" not in old.header and len(old.notes) == 2


def test_a_longer_sensitivity_run_is_also_judged_at_the_bench_length(tmp_path):
    """From each run's loss curve (a mean per 20 iterations) the ratio after the bench's 200
    iterations, judged by the same rule, before the verdict at the run's own end."""
    def curve(at_200: float, end: float) -> str:
        return " ".join(f"{v:g}" for v in [9.0] * 9 + [at_200] + [5.0] * 9 + [end])  # 20 windows: 400 iterations

    rows = [{"variant": v, "transformation_net": p, "loss_net": p, "channels_last": cl, "iterations": 400,
             "final_loss": end, "ratio": end / 100.0, "hardware": "H100", "curve": curve(c200, end)}
            for v, p, cl, c200, end in (("fp32-nchw", "fp32", False, 200.0, 100.0),
                                        ("fp32", "fp32", True, 210.0, 100.5),
                                        ("bf16", "bf16", True, 196.0, 101.0))]
    rows.append({**rows[-1], "variant": "bf16-loss-net", "transformation_net": "fp32", "final_loss": 99.0,
                 "ratio": 0.99, "curve": curve(190.0, 99.0)})
    path = store.write_table(pd.DataFrame(rows), tmp_path / "sensitivity.csv", {"summary": "s", "code_version": "x"})
    t = pages.sensitivity_table(path)
    at = t.header.index("loss ratio after 200")
    assert [r[at] for r in t.rows] == ["1.000", "1.050", "0.980", "0.950"]
    assert [r[-1] for r in t.rows] == ["1.000", "1.005", "1.010", "0.990"]
    assert ("after 200 iterations float32 runs that differ only in summation order or in their style images' Gram matrices move "
            "it by up to 5.0 %" in t.notes[-1])
    assert ("bf16, as the fast path runs it, moved it by 2.0 % (bf16 in any layout or network: -5.0 % to -2.0 %); "
            "after 400 iterations" in t.notes[-1])
    assert t.notes[-1].endswith("at most 0.5 %, within the loss agreement's 3 %: the agreement can resolve a "
                                "precision effect beyond that; bf16, as the fast path runs it, moved it by 1.0 % "
                                "(bf16 in any layout or network: -1.0 % to +1.0 %).")


# ---------------------------------------------------------------------------------------------
# the report's pieces: clean text, verdicts from the claims, figures for people


def test_a_failed_optional_metric_is_one_short_sentence():
    raw = ("not computed: the torchvision AlexNet weights are not in the torch hub cache (/root/.cache/torch/hub/"
           "checkpoints) and could not be downloaded (<urlopen error [Errno -2] Name or service not known>).")
    assert pages.metric_status("LPIPS", raw) == "LPIPS: not computed (weights not available offline)."
    assert pages.metric_status("LPIPS", "computed") == ""
    assert "pip" not in pages.metric_status("DISTS", "not computed: DISTS needs α, β (pip install DISTS-pytorch)")
    note = "SRCNN 9-1-5 on RGB, retrained here (fallback: published SRCNN weights could not be downloaded (cannot reach x))"
    assert paper_tables.model_note(note) == ("SRCNN 9-1-5 on RGB, retrained here (the published SRCNN weights were not "
                                      "available offline)")


def test_pages_show_no_machine_paths_and_no_dirty_versions(monkeypatch):
    assert pages.version("0710cdd-dirty") == "0710cdd with local changes" and pages.version("caebcb5") == "caebcb5"
    root = book.paths.ROOT
    assert pages.shown_path(root / "results" / "published" / "cpu") == "results/published/cpu"
    assert pages.shown_path("/tmp/abc/data") == "…/abc/data"
    nb = _notebook(('data_root = None      # a local mirror\nresults = None  # folder', ["parameters"]),
                   (f'data_root = "/tmp/xyz/data"\nresults = "{root / "results" / "published"}"\n', ["injected-parameters"]))
    book.show_parameters(nb)
    assert "/tmp" not in nb.cells[0].source and str(root) not in nb.cells[0].source
    assert 'results = \'results/published\'' in nb.cells[0].source
    assert nb.cells[0].source.startswith("data_root = None  # this build: set to a folder on its machine")


def test_verdicts_are_counted_whatever_they_are_and_claims_apart_are_left_out():
    t = pd.DataFrame({"claim": ["C1", "C2", "C3", "C4", "C11"], "where": ["Fig. 5"] * 5,
                      "verdict": ["reproduced", "inconclusive", "not reproduced", "inconclusive", "reproduced"],
                      "apart": [False, False, False, False, True]})
    assert report.tally(t) == "1 reproduced, 2 inconclusive, 1 not reproduced"
    assert report.tally(t.drop(columns="apart").assign(verdict=["x", "partly", "partly", "x", "x"])) == "2 partly, 3 x"
    assert "verdict-inconclusive" in report.verdict_badge("inconclusive")
    assert report.claim_chapter("C6") == "inversion" and report.claim_chapter("C99", "§4.2, Fig. 8") == "superres"
    assert report.claim_chapter("C98", "nowhere") == "claims"


def test_captions_carry_the_computed_verdict_or_none(monkeypatch):
    class Ctx:
        profile = profiles.get("demo", gpu=False)

    t = pd.DataFrame({"claim": ["C6", "C7"], "verdict": ["reproduced", "inconclusive"]})
    monkeypatch.setattr(report, "claims_table", lambda *a, **k: t)
    assert report.figure_caption(Ctx, "Fig. 3", ["C6"], "Text.") == "**Fig. 3.** Tests C6 (reproduced). Text."
    assert report.figure_caption(Ctx, "Fig. 4", ["C7", "C9"], "T.") == "**Fig. 4.** Tests C7 (inconclusive). T."
    monkeypatch.setattr(report, "claims_table", lambda *a, **k: None)
    assert report.figure_caption(Ctx, "Fig. 3", ["C6"], "Text.") == "**Fig. 3.** Text."


def test_the_landing_numbers_come_out_of_the_evidence_or_its_first_clause():
    assert report.ours_short("C1", "128²: network 1.7e5 vs L-BFGS@50 1e5; L-BFGS matches the network at iteration "
                                  "21, 28 (median 24, 2 images)") == "L-BFGS matches it at iteration 24 (128²)"
    calibrated = ("Paper rule: 128²: network 1.7e5; L-BFGS matches the network at iteration 21, 28 (median 24.5, 2 "
                  "images) → not reproduced. Calibration rule (…): 128 px (chicago, hoovertowernight): the authors' "
                  "network at iteration 6.5, ours at 23.5 (medians) → reproduced.")
    assert report.ours_short("C1", calibrated) == \
        "L-BFGS matches ours at iteration 23.5 (the authors' network: 6.5; 128 px)"  # what decides is shown
    assert report.ours_short("C10", "median 57.90× over 6") == "periodic peak 57.90× ℓ_pixel's"
    assert report.ours_short("C6", "relu2_2 29.1 dB / 0.08, relu5_3 13.9 dB / 0.41. Inconclusive — the shallowest "
                                   "layer's reconstruction is not faithful (relu2_2 29.1 dB < 30 dB)") == \
        "PSNR 29.1 → 13.9 dB with depth"  # the reason's numbers are not the measurement's
    assert report.ours_short("C7", "relu1_2 17.8 px, relu4_3 8.5 px (power-weighted mean wavelength; ρ -0.80); share "
                                   "of power above 0.25 cycles/px relu1_2 0.28, noise-only control 0.81 (3.5 px)") == \
        "wavelength 17.8 → 8.5 px with depth"  # the deepest layer's, not the noise control's 3.5 px
    long = "a new kind of evidence " * 10
    assert report.ours_short("C6", long + "; more").endswith("…") and len(report.ours_short("C6", long)) <= 90


def test_figures_are_panels_of_at_least_256_px_with_alt_text(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), "red").save(tmp_path / "a.png")
    out = pages.figure([pages.Panel(tmp_path / "a.png", "relu2_2", "a reconstruction from relu2_2"), None,
                        pages.Panel(tmp_path / "missing.png", "relu5_3")], "**Fig. 3.** Text `x`.", columns=2).data
    assert "alt='a reconstruction from relu2_2'" in out and "data:image/png;base64," in out
    assert "minmax(256px, 1fr)" in out and "relu5_3: not available" in out
    assert "<b>Fig. 3.</b> Text <code>x</code>." in out
    assert "/tmp" not in out


def test_table_one_is_copied_as_printed():
    t = paper_tables.paper_table1()
    assert t.rows[0] == ["256×256", "3.17", "9.52", "15.86", "0.015", "212× · 636× · 1060×"]
    assert t.rows[2][-1] == "208× · 625× · 1042×"


def test_a_claims_figure_number_links_to_that_figure_where_its_chapter_labels_it(tmp_path, monkeypatch):
    from perceptual.book import report
    from perceptual.core import paths

    (tmp_path / "inversion.md").write_text('pages.figure([...], "caption", label="fig3")\n')
    (tmp_path / "objective.md").write_text("pages.plot(fig, 'no label')\n")
    monkeypatch.setattr(paths, "book_dir", lambda: tmp_path)
    assert report.figure_link("inversion", "Fig. 3") == "<a href='inversion.html#fig3'>Fig. 3</a>"
    assert report.figure_link("inversion", "§4, Fig. 3 & 4") == \
        "§4, <a href='inversion.html#fig3'>Fig. 3</a> &amp; 4"  # the rest escaped
    assert report.figure_link("objective", "Fig. 5, §4.1") == "Fig. 5, §4.1"  # no labelled figure: text only
    assert report.figure_link("speed", "Table 1") == "Table 1"
    (tmp_path / "superres.md").write_text('pages.plot(fig, label={4: "fig8", 8: "fig9"}[factor])\n')
    assert report.figure_link("superres", "§4.2, Figs. 8–9") == \
        "§4.2, <a href='superres.html#fig8'>Figs. 8</a>–<a href='superres.html#fig9'>9</a>"  # both ends of a range
    (tmp_path / "qualitative.md").write_text('pages.figure([...], "caption", label="fig7")\n')
    assert report.figure_link("qualitative", "Figs. 6–7") == "Figs. 6–<a href='qualitative.html#fig7'>7</a>"


def test_the_difficult_list_says_which_sr_networks_fail_the_gate():
    """On the published cpu answer: both SR losses against bicubic at ×4, and the gate's reason (never a
    sentence that blames ℓ_feat alone when ℓ_pixel fails too)."""
    from perceptual.book import report

    _, hard = report.easy_and_difficult("cpu")
    sr = [h for h in hard if h.startswith("Super-resolution")]
    assert sr == ["Super-resolution is hard to train this short: on ×4, against bicubic (mean over the sets), "
                  "ℓ_pixel −1.8 dB, ℓ_feat −1.3 dB; ℓ_feat does not work on 3 of 6 set × factor, ℓ_pixel does not "
                  "work on 5 of 6 set × factor, so the SR claims (C8–C10) are inconclusive."]
