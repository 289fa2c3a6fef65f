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

Every page is also read as a reader would (:func:`_reader_problems`): nothing wider than the text
column at 1,280 px (no table behind a horizontal scroll), no machine's absolute path, no ``-dirty``
and no word of the project's bookkeeping (issue, session, scratch, stretch, a speed "target") in its
text, no "NaN", every image at least 200 px wide where it is shown (the landing table's claim
thumbnails, which link to their chapter, excepted) with alt text that describes it; and every claim
of the landing table links to a chapter whose claims box lists it. The ``test_planted_*`` tests
plant each fault in a small page and show that the check catches it; they need no built book
(only Playwright and Chromium) and run in ``make test``.
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
needs_book = pytest.mark.skipif(not HTML, reason="no built book: set PERCEPTUAL_BOOK_HTML=book/_build/html "
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
        message = f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set PERCEPTUAL_CHROMIUM)"
        if HTML:  # a built book's check was asked for: it must run
            pytest.fail(message)
        pytest.skip(message)
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
        page.on("console", lambda m: m.type == "error" and not _mathjax_probe(m)
                and self.problems.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        page.on("requestfailed", lambda r: r.url != MATHJAX_PROBE
                and self.problems.append(f"failed request: {r.url} ({r.failure})"))
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


# MathJax 2's HTML-CSS output (the MathJax in the jupyter-server-mathjax wheel) detects web fonts
# with a blank @font-face whose source is about:blank; Chromium refuses it with a console error.
# Nothing is loaded from anywhere: not a fault of the page.
MATHJAX_PROBE = "about:blank"


def _mathjax_probe(message) -> bool:
    return message.location.get("url") == MATHJAX_PROBE or f"font at '{MATHJAX_PROBE}'" in message.text


def _check_page(v: Visit) -> list[str]:
    page = v.page
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle")
    problems = list(v.problems)
    broken = page.evaluate("""() => [...document.images]
        .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))""")
    problems += [f"image not loaded: {src}" for src in broken]
    maths = page.evaluate("""() => ({
        formulas: document.querySelectorAll('.math.notranslate').length,
        untypeset: [...document.querySelectorAll('.math.notranslate')]
            .filter(e => !e.querySelector('.mjx-chtml, .MathJax')).map(e => e.textContent.slice(0, 60)),
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


@needs_book
def test_every_page_loads_cleanly_over_http(site, browser):
    html, base = site
    shots = _screenshots(html)
    shots.mkdir(parents=True, exist_ok=True)
    problems, typeset = [], 0
    for path in _pages(html):
        v = Visit(browser, base + path.name)
        try:
            problems += [f"{path.name}: {p}" for p in _check_page(v)]
            if path.name not in ("search.html", "genindex.html"):
                problems += [f"{path.name}: {p}" for p in _reader_problems(v.page)]
            typeset += v.page.evaluate("document.querySelectorAll('.mjx-chtml, .MathJax').length")
            if path.name not in ("search.html",):
                v.page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-page
                v.page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
        finally:
            v.close()
    assert problems == []
    assert typeset > 0  # the methods chapter's equations at least
    assert (shots / "objective.png").is_file()


@needs_book
def test_every_internal_link_resolves(site):
    html, _ = site
    problems = [p for page in _pages(html) for p in _internal_links(html, page)]
    assert problems == []


@needs_book
def test_a_page_works_from_file_urls(site, browser):
    html, _ = site
    v = Visit(browser, (html / "methods.html").as_uri())
    try:
        problems = _check_page(v)
        assert v.page.evaluate("document.querySelectorAll('.mjx-chtml, .MathJax').length") > 0
    finally:
        v.close()
    assert problems == []


@needs_book
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


# ---------------------------------------------------------------------------------------------
# the page as a reader sees it: fit, clean text, readable images, claims with their evidence

ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])(/(?:tmp|root|home|work|usr|var|opt|mnt|srv|scratch|Users|private)/\S*"
                           r"|[A-Za-z]:\\\\\S+)")
INTERNAL = re.compile(r"\b(issues?|sessions?|scratch|stretch)\b|-dirty\b", re.IGNORECASE)
TARGET = re.compile(r"(\w+)?\s*\btargets?\b\s*(\w+)?", re.IGNORECASE)
# "target" is the paper's word for an image a loss compares with (the style target, target y);
# anywhere else it is the project's bookkeeping ("speed targets", "Targets of the CPU run")
TARGET_BEFORE = {"style", "content", "feature", "the", "a", "its", "their", "each", "to", "from"}
TARGET_AFTER = {"y", "image", "images", "photograph", "photographs", "y_c", "y_s"}
NAN = re.compile(r"\bNaN\b|(?<![\w.])nan(?![\w.])")
MIN_IMAGE_PX = 200
HASH_ALT = re.compile(r"^[0-9a-f]{12,}(\.\w+)?$|\.(png|jpe?g|svg)$", re.IGNORECASE)

_READER_JS = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const style = getComputedStyle(article);
  const box = article.getBoundingClientRect();
  const right = box.right - parseFloat(style.paddingRight || 0) + 1;
  const name = e => (e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : '')
                     + ' ' + (e.textContent || '').trim().slice(0, 40));
  const wide = [...article.querySelectorAll('table, img, figure, .panel-grid, .output, .cell_output > *')]
      .filter(e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > right)
      .map(e => `${name(e)} ends at ${Math.round(e.getBoundingClientRect().right)} px, the column at ${Math.round(right)} px`);
  const scrolled = [...article.querySelectorAll('*')].filter(e => {
      const o = getComputedStyle(e).overflowX;
      return (o === 'auto' || o === 'scroll' || o === 'hidden') && e.scrollWidth > e.clientWidth + 1
             && e.clientWidth > 1 && !e.closest('.cell_input')
             && !e.closest('.MathJax_Display, .MathJax, .MJX_Assistive_MathML, .mjx-chtml, mjx-container');
    }).map(e => `${name(e)} is ${e.scrollWidth} px wide in ${e.clientWidth} px (hidden behind a horizontal scroll)`);
  const words = root => {  // text nodes joined by spaces: <dt>Data</dt><dd>/tmp/…</dd> reads "Data /tmp/…"
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT), out = [];
    while (walk.nextNode()) out.push(walk.currentNode.nodeValue);
    return out.join(' ');
  };
  const clone = article.cloneNode(true);
  clone.querySelectorAll('.cell_input, script, style').forEach(e => e.remove());
  const images = [...article.querySelectorAll('img')].filter(i => i.getBoundingClientRect().width > 0).map(i => ({
      src: (i.getAttribute('src') || '').slice(0, 60), alt: i.getAttribute('alt') || '',
      width: Math.round(i.getBoundingClientRect().width),
      thumb: i.classList.contains('claim-thumb') && !!i.closest('a[href]')}));
  return {page: document.documentElement.scrollWidth, viewport: window.innerWidth, wide, scrolled, images,
          text: words(clone), all: words(article)};
}"""


def _internal_words(text: str) -> list[str]:
    found = [m.group(0) for m in INTERNAL.finditer(text)]
    for m in TARGET.finditer(text):
        before, after = (m.group(1) or "").lower(), (m.group(2) or "").lower()
        if before not in TARGET_BEFORE and after not in TARGET_AFTER:
            found.append(m.group(0).strip())
    return found


def _reader_problems(page) -> list[str]:
    """What a reader would trip over on ``page`` (see the module doc)."""
    r = page.evaluate(_READER_JS)
    problems = []
    if r["page"] > r["viewport"] + 1:
        problems.append(f"the page is {r['page']} px wide in a {r['viewport']} px window (horizontal overflow)")
    problems += [f"wider than the text column: {w}" for w in r["wide"]]
    problems += r["scrolled"]
    problems += [f"absolute path in the text: {m.group(0)[:60]}" for m in ABSOLUTE_PATH.finditer(r["all"])]
    problems += [f"internal word in the text: {w!r}" for w in _internal_words(r["text"])]
    problems += [f"NaN in the text: …{r['text'][max(0, m.start() - 30):m.end() + 10]!r}…" for m in NAN.finditer(r["text"])]
    for im in r["images"]:
        if im["width"] < MIN_IMAGE_PX and not im["thumb"]:
            problems.append(f"image shown {im['width']} px wide (< {MIN_IMAGE_PX} px): {im['src']}")
        if not im["alt"].strip() or HASH_ALT.search(im["alt"].strip()):
            problems.append(f"image without a meaningful alt text ({im['alt']!r}): {im['src']}")
    return problems


def _claims_box(browser, url: str) -> dict:
    """The ids of a page's claims boxes and the claims they list (``ok`` False: no such page)."""
    try:
        v = Visit(browser, url)
    except Exception:  # the link leads nowhere (net::ERR_FILE_NOT_FOUND, …)
        return {"ids": [], "claims": [], "ok": False}
    try:
        if v.problems:
            return {"ids": [], "claims": [], "ok": False}
        return v.page.evaluate("""() => ({ids: [...document.querySelectorAll('.chapter-claims')].map(b => b.id),
            claims: [...document.querySelectorAll('.chapter-claims tbody tr td:first-child b')].map(b => b.textContent.trim()),
            ok: true})""")
    finally:
        v.close()


def _claim_problems(browser, landing_url: str) -> list[str]:
    """Every claim in the landing page's table links to a chapter whose claims box lists it."""
    v = Visit(browser, landing_url)
    try:
        links = v.page.evaluate("""() => [...document.querySelectorAll('.claims-summary a.claim-link')]
            .map(a => ({claim: a.textContent.trim(), href: a.href}))""")
    finally:
        v.close()
    if not links:
        return ["the landing page has no claims table with links (.claims-summary a.claim-link)"]
    problems, listed = [], {}
    for link in links:
        page = link["href"].split("#")[0]
        if page not in listed:
            listed[page] = _claims_box(browser, page)
        found = listed[page]
        anchor = link["href"].split("#")[1] if "#" in link["href"] else ""
        if not found["ok"]:
            problems.append(f"{link['claim']}: its link {link['href']} does not open a page")
        elif link["claim"] not in found["claims"]:
            problems.append(f"{link['claim']}: {page.rsplit('/', 1)[-1]} has no claims box listing it (its evidence)")
        elif anchor and anchor not in found["ids"]:
            problems.append(f"{link['claim']}: no #{anchor} on {page.rsplit('/', 1)[-1]}")
    return problems


@needs_book
def test_every_claim_on_the_landing_page_links_to_its_evidence(site, browser):
    _, base = site
    assert _claim_problems(browser, base + "intro.html") == []


# ---------------------------------------------------------------------------------------------
# planted faults: each rule catches a page that breaks it (no built book needed)

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ margin: 0; }} article.bd-article {{ width: 688px; margin-left: 256px; }}
.people-table {{ overflow-x: auto; }}</style></head>
<body><main><article class="bd-article"><section><h1>{title}</h1>{body}</section></article></main></body></html>"""
_IMAGE = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
_CLEAN = (f"<p>The style target and the target image y; 28.42 dB.</p><div class='people-table'><table><tr><td>28.42</td>"
          f"</tr></table></div><img src='{_IMAGE}' alt='the ground truth of Set5 baby' style='width: 300px'>")
FAULTS = {
    "wide table": "<div class='people-table'><table style='width: 1197px'><tr><td>SSIM</td></tr></table></div>",
    "page overflow": "<div style='width: 2000px'>wide</div>",
    "absolute path": "<p>data root /tmp/tmpa1b2/data: content coco</p>",
    "hidden absolute path": "<details><summary>How this page was made</summary>/root/.cache/torch/hub</details>",
    "dirty version": "<p>code 0710cdd-dirty</p>",
    "internal word: issue": "<p>(scratch runs, issue 14)</p>",
    "internal word: stretch": "<p>network ≤ L-BFGS@100 (stretch ≤ @50)</p>",
    "internal word: session": "<p>measured in session 7</p>",
    "internal word: target": "<h2>Targets of the CPU run</h2><p>speed target met</p>",
    "NaN": "<table><tr><td>NaN</td><td>1.0</td></tr></table>",
    "small image": f"<img src='{_IMAGE}' alt='a reconstruction from relu3_3' style='width: 100px'>",
    "hash alt text": f"<img src='{_IMAGE}' alt='0f3a9c2e7b1d4e5f6a7b8c9d.png' style='width: 300px'>",
}


def _planted(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{re.sub(r'[^a-z]+', '-', name)}.html"
    path.write_text(_PAGE.format(title=name, body=body), encoding="utf-8")
    return path.as_uri()


def _reader_check(browser, url: str) -> list[str]:
    v = Visit(browser, url)
    try:
        return _reader_problems(v.page)
    finally:
        v.close()


def test_planted_a_clean_page_passes(browser, tmp_path):
    assert _reader_check(browser, _planted(tmp_path, "clean", _CLEAN)) == []


@pytest.mark.parametrize("fault", list(FAULTS))
def test_planted_fault_is_caught(browser, tmp_path, fault):
    problems = _reader_check(browser, _planted(tmp_path, fault, _CLEAN + FAULTS[fault]))
    assert problems, f"the check missed: {fault}"


def test_planted_thumbnails_that_link_to_their_chapter_are_allowed(browser, tmp_path):
    thumb = f"<a href='x.html'><img class='claim-thumb' src='{_IMAGE}' alt='C6: target and relu5_3' style='width: 120px'></a>"
    assert _reader_check(browser, _planted(tmp_path, "thumb", _CLEAN + thumb)) == []
    loose = f"<img class='claim-thumb' src='{_IMAGE}' alt='C6: target and relu5_3' style='width: 120px'>"
    assert _reader_check(browser, _planted(tmp_path, "loose thumb", _CLEAN + loose))


def test_planted_claims_without_evidence_are_caught(browser, tmp_path):
    box = ("<div class='people-table chapter-claims' id='claims-{c}'><table><tbody><tr><td><b>{claim}</b> says</td>"
           "<td>measured</td><td>reproduced</td></tr></tbody></table></div>")
    (tmp_path / "inversion.html").write_text(_PAGE.format(title="inversion", body=box.format(c="inversion", claim="C6")))
    (tmp_path / "objective.html").write_text(_PAGE.format(title="objective", body="<p>Fig. 5, no claims box</p>"))
    rows = "".join(f"<tr><td><a class='claim-link' href='{href}'><b>{claim}</b></a></td></tr>"
                   for claim, href in (("C6", "inversion.html#claims-inversion"), ("C7", "inversion.html#claims-inversion"),
                                       ("C1", "objective.html#claims-objective"), ("C4", "speed.html")))
    landing = tmp_path / "intro.html"
    landing.write_text(_PAGE.format(title="intro", body=f"<div class='claims-summary'><table>{rows}</table></div>"))
    problems = _claim_problems(browser, landing.as_uri())
    assert any(p.startswith("C7:") for p in problems)  # the page exists, its box does not list C7
    assert any(p.startswith("C1:") for p in problems)  # no claims box at all
    assert any(p.startswith("C4:") for p in problems)  # no such page
    assert not any(p.startswith("C6:") for p in problems)
