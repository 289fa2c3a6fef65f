"""The built book in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Runs only on a built book: ``PERCEPTUAL_BOOK_HTML=book/_build/html pytest tests/test_book_browser.py``
(``make browser-test`` after ``make reproduce``; ``.ci/run`` does both). Without that variable the
tests are skipped. Nothing downloads a browser (never ``playwright install``): Chromium comes from
``apt-get install chromium`` (``PERCEPTUAL_CHROMIUM`` names another binary).

Every page is opened from a loopback HTTP server, and one from ``file://``; each must load with no
console error, no failed request, no request to another host, every image decoded, every formula
typeset by MathJax without error, and every internal link pointing at a page and anchor that exist.
The search page must find "Gram". A full-page screenshot of each chapter goes to
``PERCEPTUAL_BOOK_SCREENSHOTS`` (default ``results/<profile>/screenshots``).
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

HTML = os.environ.get("PERCEPTUAL_BOOK_HTML", "").strip()
pytestmark = pytest.mark.skipif(not HTML, reason="no built book: set PERCEPTUAL_BOOK_HTML=book/_build/html "
                                                 "after `make reproduce` (or run `make browser-test`)")
CHROMIUM = os.environ.get("PERCEPTUAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
LOCAL = {"127.0.0.1", "localhost", ""}


def _html() -> Path:
    path = Path(HTML).resolve()
    if not (path / "index.html").is_file():
        pytest.fail(f"PERCEPTUAL_BOOK_HTML={HTML}: no index.html there; build the book first (`make reproduce`)")
    return path


def _screenshots(html: Path) -> Path:
    env = os.environ.get("PERCEPTUAL_BOOK_SCREENSHOTS", "").strip()
    if env:
        return Path(env)
    marker = html.parent / "profile.txt"  # written by perceptual.book.site.build
    profile = marker.read_text().strip() if marker.is_file() else "unknown"
    return html.parents[2] / "results" / profile / "screenshots"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    html = _html()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield html, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set PERCEPTUAL_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Visit:
    """A page opened in a fresh context, with everything that went wrong while loading it."""

    def __init__(self, browser, url: str):
        self.url, self.problems, self.requests = url, [], []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = page = self.context.new_page()
        page.route("**/*", self._route)
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed request: {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        self.math = page.evaluate("""() => new Promise(done => {
            if (!(window.MathJax && MathJax.Hub)) return done(false);
            MathJax.Hub.Queue(() => done(true));
        })""")

    def _route(self, route):
        url = urlparse(route.request.url)
        self.requests.append(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL:
            self.problems.append(f"request to another host: {route.request.url}")
            return route.abort()
        return route.continue_()

    def close(self):
        self.context.close()


def _check_page(v: Visit) -> list[str]:
    page = v.page
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle")
    problems = list(v.problems)
    broken = page.evaluate("""() => [...document.images]
        .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))""")
    problems += [f"image not loaded: {src}" for src in broken]
    maths = page.evaluate("""() => ({
        formulas: document.querySelectorAll('span.math, div.math').length,
        untypeset: [...document.querySelectorAll('span.math, div.math')]
            .filter(e => !e.querySelector('.mjx-chtml')).map(e => e.textContent.slice(0, 60)),
        errors: [...document.querySelectorAll('.mjx-merror, merror, .MathJax_Error, .mjx-error')]
            .map(e => e.textContent.slice(0, 60))})""")
    if maths["formulas"] and not v.math:
        problems.append(f"{maths['formulas']} formulas but MathJax did not load")
    problems += [f"formula not typeset: {t!r}" for t in maths["untypeset"]]
    problems += [f"MathJax error: {t!r}" for t in maths["errors"]]
    return problems


def _internal_links(html: Path, page: Path) -> list[str]:
    """Links from ``page`` that do not resolve to a file (and an id in it) in the built book."""
    text = page.read_text(encoding="utf-8")
    problems = []
    for href in set(re.findall(r'<a\s[^>]*href="([^"]+)"', text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", href) or href.startswith("//"):
            continue  # external (https:, mailto:): a link, not something the page loads
        url = urlparse(urljoin(page.relative_to(html).as_posix(), href))
        target = html / unquote(url.path) if url.path else page
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"{page.name}: link {href} → missing {target.relative_to(html)}")
        elif url.fragment and not re.search(rf'id="{re.escape(unquote(url.fragment))}"',
                                            target.read_text(encoding="utf-8", errors="ignore")):
            problems.append(f"{page.name}: link {href} → no #{url.fragment} in {target.name}")
    return problems


def _pages(html: Path) -> list[Path]:
    return sorted(html.glob("*.html"))


def test_every_page_loads_cleanly_over_http(site, browser):
    html, base = site
    shots = _screenshots(html)
    shots.mkdir(parents=True, exist_ok=True)
    problems, typeset = [], 0
    for path in _pages(html):
        v = Visit(browser, base + path.name)
        try:
            problems += [f"{path.name}: {p}" for p in _check_page(v)]
            typeset += v.page.evaluate("document.querySelectorAll('.mjx-chtml').length")
            if path.name not in ("search.html",):
                v.page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-page
                v.page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
        finally:
            v.close()
    assert problems == []
    assert typeset > 0  # the methods chapter's equations at least
    assert (shots / "objective.png").is_file()


def test_every_internal_link_resolves(site):
    html, _ = site
    problems = [p for page in _pages(html) for p in _internal_links(html, page)]
    assert problems == []


def test_a_page_works_from_file_urls(site, browser):
    html, _ = site
    v = Visit(browser, (html / "methods.html").as_uri())
    try:
        problems = _check_page(v)
        assert v.page.evaluate("document.querySelectorAll('.mjx-chtml').length") > 0
    finally:
        v.close()
    assert problems == []


def test_search_finds_gram(site, browser):
    _, base = site
    v = Visit(browser, base + "search.html?q=Gram")
    try:
        v.page.wait_for_selector("#search-results li", timeout=20_000)
        hits = v.page.evaluate("[...document.querySelectorAll('#search-results li a')].map(a => a.textContent)")
        problems = list(v.problems)
    finally:
        v.close()
    assert hits, "no search results for Gram"
    assert problems == []
