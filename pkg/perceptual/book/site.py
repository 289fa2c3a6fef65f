"""The book: compute results, execute the notebooks with papermill, build with Jupyter Book.

Sources are MyST text notebooks in ``book/`` (jupytext), never executed in place. For a
profile P, :func:`reproduce` computes what each chapter needs (:func:`compute`), writes executed
copies to ``results/P/book/`` (:func:`execute`) and :func:`build` renders that folder, with the
book's static files and a local MathJax beside it, to ``book/_build/html`` — a static site that
loads nothing from the internet. Computation lives in :mod:`perceptual.study.experiments` and is cached
by config hash, so a rerun reuses finished models and tables and an interrupted run continues.
What notebooks call (parameters, figures, tables, the "How this page was made" box) is
:mod:`perceptual.book.site.pages`.
"""
from __future__ import annotations

import ast
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from perceptual.core import paths, store
from perceptual.study import profiles

# chapter → the computation it needs (run before the notebooks, with progress bars). The order is
# the order of execution; the reading order is _toc.yml's. A new chapter: one line here + _toc.yml.
CHAPTERS: dict[str, str | None] = {
    "intro": None,
    "claims": None,  # reads what the other chapters computed (run last among notebooks)
    "methods": None,
    "inversion": "inversion",
    "objective": "objective",
    "qualitative": "qualitative",
    "speed": "speed",
    "superres": "superres",
    "custom_loss": None,
    "implementation": None,  # appendix: the benchmark tables (`perceptual bench`), read, not computed
}
STATIC = ("_config.yml", "_toc.yml", "references.md", "_assets", "_ext")

# MathJax 2.7 (Debian's libjs-mathjax, or `npm install mathjax@2` anywhere): the files the
# TeX → CommonHTML configuration loads, copied into the build so that maths renders offline.
MATHJAX_DEFAULT = Path("/usr/share/javascript/mathjax")  # Debian's libjs-mathjax: the fallback
# MathJax 2.7 configs, preferred first: Debian's and npm's copies have the TeX → CommonHTML one; the
# copy inside PyPI's jupyter-server-mathjax wheel (a dependency, so two commands suffice) has only
# the combined TeX/MathML → HTML-CSS one.
MATHJAX_CONFIGS = ("TeX-AMS_CHTML", "TeX-AMS-MML_HTMLorMML-full")
# What a config needs beyond its name (Sphinx's mathjax2_config, a MathJax.Hub.Config before MathJax
# loads): the wheel's copy has only the STIX-Web fonts, while HTML-CSS asks for TeX fonts first.
MATHJAX_HUB = {"TeX-AMS-MML_HTMLorMML-full": '{"HTML-CSS": {"availableFonts": ["STIX"], "preferredFont": "STIX", '
                                              '"webFont": "STIX-Web", "imageFont": null}}'}
MATHJAX_FILES = ("MathJax.js", *(f"config/{c}.js" for c in MATHJAX_CONFIGS), "config/local", "jax/input/TeX",
                 "jax/output/CommonHTML", "jax/output/HTML-CSS", "jax/element", "extensions",
                 "fonts/HTML-CSS/TeX/woff", "fonts/HTML-CSS/STIX-Web/woff")


def _pip_mathjax() -> Path | None:
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def mathjax_config(folder: Path) -> str | None:
    """The first of :data:`MATHJAX_CONFIGS` that ``folder`` has."""
    return next((c for c in MATHJAX_CONFIGS if (folder / "config" / f"{c}.js").is_file()), None)


choose_profile = profiles.choose  # an explicit name, PERCEPTUAL_PROFILE, else paper with a GPU, demo without


def staging(profile: str) -> Path:
    return paths.results_dir() / profile / "book"


# ---------------------------------------------------------------------------------------------
# compute and execute


def compute(ctx, chapter: str) -> Path | None:
    """Run the computation ``chapter`` needs; when it computed something now (not a cached
    result), record how long it took in the table's meta (``compute_seconds``)."""
    from perceptual.study import experiments

    step = CHAPTERS[chapter]
    if not step:
        return None
    start = time.time()
    table = experiments.STEPS[step](ctx, progress=True)
    meta = store.read_meta(table)
    if datetime.fromisoformat(meta["created"]).timestamp() >= start - 1:
        meta["compute_seconds"] = round(time.time() - start, 1)
        store.atomic_write_text(store.meta_path(table), json.dumps(meta, indent=2, sort_keys=True))
    return table


def parameters(profile: str, device: str | None = None) -> dict:
    """What :func:`execute` injects into a notebook's parameters cell (only what differs from the
    notebook's defaults: the profile and device; the data root and results folder when set)."""
    params = {"profile": profile, "device": device or "auto"}
    if paths.data_root_is_mirror():
        params["data_root"] = str(paths.data_root())
    if os.environ.get("PERCEPTUAL_RESULTS"):
        params["results"] = str(paths.results_dir())
    return params


def show_parameters(nb) -> None:
    """One parameters cell on the page, not two: write the values papermill injected into the
    notebook's own parameters cell (keeping its comments) and tag the injected copy
    ``remove-cell``. The executed notebook still runs as it ran (the injected cell stays in it)."""
    cells = nb["cells"]
    tags = [c.get("metadata", {}).get("tags", []) for c in cells]
    own = next((c for c, t in zip(cells, tags) if "parameters" in t), None)
    injected = next((c for c, t in zip(cells, tags) if "injected-parameters" in t), None)
    if own is None or injected is None:
        return
    values = {}
    for node in ast.parse(injected["source"]).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.get_source_segment(injected["source"], node.value)
    lines = own["source"].split("\n")
    for node in ast.parse(own["source"]).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in values and node.value.lineno == node.value.end_lineno):
            i, line = node.value.lineno - 1, lines[node.value.lineno - 1]
            new = _shown_value(values[node.targets[0].id])
            if new is None:  # a machine's absolute path: the page keeps the default and says so
                lines[i] = line.split("#")[0].rstrip() + "  # this build: set to a folder on its machine"
                continue
            lines[i] = line[:node.value.col_offset] + new + line[node.value.end_col_offset:]
    own["source"] = "\n".join(lines)
    own.setdefault("metadata", {}).setdefault("mystnb", {})["code_prompt_show"] = "Show this page's parameters"
    injected.setdefault("metadata", {}).setdefault("tags", []).append("remove-cell")


def _shown_value(source: str) -> str | None:
    """A parameter's value as the page shows it: an absolute path inside the checkout relative to
    it (``"results/published"``), one outside it None (no machine's paths on a page)."""
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source
    if not (isinstance(value, str) and Path(value).is_absolute()):
        return source
    if paths.ROOT is not None:
        try:
            return repr(Path(value).resolve().relative_to(Path(paths.ROOT).resolve()).as_posix())
        except ValueError:
            pass
    return None


def execute(name: str, profile: str, device: str | None = None, out_dir: Path | None = None) -> Path:
    """Convert ``book/NAME.md`` to a notebook and execute it with papermill into results/
    (``out_dir``, default :func:`staging`)."""
    import jupytext
    import nbformat
    import papermill

    src = paths.book_dir() / f"{name}.md"
    out_dir = out_dir or staging(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f".{name}.input.ipynb"
    jupytext.write(jupytext.read(src), raw, fmt="ipynb")
    target = out_dir / f"{name}.ipynb"
    with store.atomic_path(target) as tmp:
        tmp_nb = tmp.with_suffix(".ipynb")
        try:
            papermill.execute_notebook(str(raw), str(tmp_nb), parameters=parameters(profile, device),
                                       kernel_name="python3", cwd=str(out_dir), progress_bar=False, log_output=False)
            nb = nbformat.read(tmp_nb, as_version=4)
            show_parameters(nb)
            nbformat.write(nb, tmp)
        finally:
            tmp_nb.unlink(missing_ok=True)
    raw.unlink(missing_ok=True)
    return target


def reproduce(profile: str | None = None, only: str | None = None, build_book: bool = True,
              device: str | None = None) -> int:
    """Compute, execute every notebook (or ``only`` one), build the book. Returns an exit code."""
    from perceptual.study import experiments

    name, why = choose_profile(profile)
    chapters = [only] if only else list(CHAPTERS)
    unknown = [c for c in chapters if c not in CHAPTERS]
    if unknown:
        print(f"error: unknown chapter {unknown[0]!r}; chapters: {', '.join(CHAPTERS)}", file=sys.stderr)
        return 2
    log_file = paths.results_dir() / name / "reproduce.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("perceptual")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    say = lambda msg: (print(msg, flush=True), root.info(msg))  # noqa: E731
    try:
        say(f"profile: {name} ({why}); log: {log_file}")
        prof = profiles.get(name)
        say(profiles.describe(prof))
        ctx = experiments.Context.create(prof, device)
        for chapter in chapters:
            if CHAPTERS[chapter]:
                say(f"[compute] {chapter}")
                say(f"  → {compute(ctx, chapter)}")
        for chapter in chapters:
            say(f"[notebook] {chapter}")
            say(f"  → {execute(chapter, name, device)}")
        rc = build(name) if build_book else 0
        say(f"done (exit {rc})")
        return rc
    finally:
        root.removeHandler(handler)
        handler.close()


# ---------------------------------------------------------------------------------------------
# build and check


def mathjax_source() -> Path | None:
    """A MathJax 2.7 folder: ``PERCEPTUAL_MATHJAX``, else the one in the ``jupyter-server-mathjax``
    wheel (installed with the book's dependencies), else Debian's ``libjs-mathjax``; None if absent."""
    env = os.environ.get("PERCEPTUAL_MATHJAX", "").strip()
    for folder in ([Path(env).expanduser()] if env else []) + [_pip_mathjax(), MATHJAX_DEFAULT]:
        if folder is not None and (folder / "MathJax.js").is_file() and mathjax_config(folder):
            return folder
    return None


def stage_mathjax(dest: Path) -> str | None:
    """Copy MathJax's TeX/CommonHTML files to ``dest/mathjax``; None (and nothing copied) if absent."""
    src = mathjax_source()
    if src is None:
        return None
    target = dest / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    for rel in MATHJAX_FILES:
        path = src / rel
        if path.is_dir():
            shutil.copytree(path, target / rel)
        elif path.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / rel)
    return str(src)


def stage(name: str, src: Path | None = None) -> tuple[Path, list[str]]:
    """Copy the book's static files and MathJax beside the executed notebooks; (folder, missing chapters)."""
    src = src or staging(name)
    for stale in src.glob(".*.ipynb") if src.is_dir() else ():  # an interrupted execution's temporaries
        stale.unlink(missing_ok=True)
    for f in STATIC:
        path = paths.book_dir() / f
        if path.is_dir():
            shutil.copytree(path, src / f, dirs_exist_ok=True)
        else:
            shutil.copy2(path, src / f)
    return src, [c for c in CHAPTERS if not (src / f"{c}.ipynb").is_file()]


def build(profile: str | None = None, src: Path | None = None) -> int:
    """Render ``results/PROFILE/book`` (executed notebooks; ``src`` if given) into ``book/_build/html``.
    With nothing executed locally, the book is rendered from the published results
    (:func:`render_published`)."""
    name = profile or _latest_profile()
    if name is None:
        if published_profiles():
            print("no executed notebooks under results/*/book: rendering the published results", flush=True)
            return render_published()
        print("error: no executed notebooks under results/*/book: run `make reproduce` first", file=sys.stderr)
        return 2
    src, missing = stage(name, src)
    if missing:
        print(f"error: chapters not executed for profile {name}: {', '.join(missing)} (run `make reproduce`)",
              file=sys.stderr)
        return 2
    mathjax = stage_mathjax(src / "_assets")
    if mathjax is None:
        print("error: no MathJax 2.7 (the book renders maths offline): `make setup` installs it "
              "(jupyter-server-mathjax); else `apt-get install libjs-mathjax`, or `npm install mathjax@2` and "
              "set PERCEPTUAL_MATHJAX to node_modules/mathjax", file=sys.stderr)
        return 2
    config = src / "_config.yml"  # the staged copy: point it at the config this MathJax has
    chosen = mathjax_config(Path(mathjax))
    text = config.read_text().replace("config=TeX-AMS_CHTML", f"config={chosen}")
    if chosen in MATHJAX_HUB:
        text = re.sub(r"^(\s*)(mathjax_path: .*)$", lambda m: f"{m[1]}{m[2]}\n{m[1]}mathjax2_config: {MATHJAX_HUB[chosen]}",
                      text, count=1, flags=re.M)
    config.write_text(text)
    out = paths.book_dir()
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src), "--path-output", str(out),
           "-W", "-n", "--keep-going"]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    html = out / "_build" / "html"
    if rc == 0:
        (html / ".nojekyll").touch()  # GitHub Pages: serve _static/, _images/ as they are
        store.atomic_write_text(out / "_build" / "profile.txt", name)  # which results the site shows
        problems = check_html(html)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        rc = 1 if problems else 0
        print(f"book: {html / 'index.html'}")
    return rc


def published_profiles() -> list[str]:
    """Profiles with committed results under ``results/published/`` (``perceptual publish``)."""
    root = paths.published_dir()
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name != paths.BENCHMARKS) if root.is_dir() else []


def render_published(profile: str | None = None) -> int:
    """Execute every chapter against ``results/published/PROFILE`` — reading its tables, images and
    networks, computing nothing (:func:`perceptual.core.paths.read_only`) — and build the book. The
    executed notebooks go to ``results/PROFILE-published/book``, never into the published folder."""
    names = published_profiles()
    name = profile or ("cpu" if "cpu" in names else names[0] if names else None)
    if name not in names:
        print(f"error: no published results for profile {name!r} under {paths.published_dir()} "
              f"(published: {', '.join(names) or 'none'})", file=sys.stderr)
        return 2
    out_dir = paths.published_dir().parent / f"{name}-published" / "book"
    saved = {k: os.environ.get(k) for k in ("PERCEPTUAL_RESULTS", "PERCEPTUAL_READ_ONLY")}
    os.environ.update(PERCEPTUAL_RESULTS=str(paths.published_dir()), PERCEPTUAL_READ_ONLY="1")
    try:
        for chapter in CHAPTERS:
            print(f"[notebook] {chapter} (published results of {name})", flush=True)
            execute(chapter, name, "cpu", out_dir=out_dir)
        return build(name, src=out_dir)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _latest_profile() -> str | None:
    books = sorted(paths.results_dir().glob("*/book"), key=lambda p: p.stat().st_mtime)
    return books[-1].parent.name if books else None


class _Links(HTMLParser):
    """What a page loads: images, scripts, stylesheets (and anything else with src/href to load)."""

    LOADS = {"img": "src", "script": "src", "iframe": "src", "source": "src", "audio": "src", "video": "src"}

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.loads: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if a.get(self.LOADS.get(tag, "")):
            self.loads.append(a[self.LOADS[tag]])
        if tag == "link" and a.get("href") and set((a.get("rel") or "").split()) & {"stylesheet", "preload",
                                                                                    "icon", "modulepreload"}:
            self.loads.append(a["href"])


def _remote(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url.strip()))


def check_html(html: Path) -> list[str]:
    """Every chapter has a page, every image a page references exists, and no page loads
    anything from another host (scripts, styles, fonts, images): the book works offline."""
    problems = [f"missing page {c}.html" for c in CHAPTERS if not (html / f"{c}.html").is_file()]
    for page in sorted(html.glob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        problems += [f"{page.name}: loads {u} from the internet" for u in parser.loads if _remote(u)]
        for src in parser.images:
            if src.startswith("data:") or re.match(r"^[a-z]+://", src):
                continue
            if not (page.parent / src.split("#")[0].split("?")[0]).is_file():
                problems.append(f"{page.name}: image {src} does not exist")
    for css in sorted(html.glob("_static/**/*.css")):
        for url in re.findall(r"(?:@import\s+|url\()\s*['\"]?((?:https?:)?//[^'\")\s]+)", css.read_text(errors="ignore")):
            problems.append(f"{css.relative_to(html)}: loads {url} from the internet")
    return problems
