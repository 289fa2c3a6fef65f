"""The book's answer: the landing page's reproducibility report (the one-line answer, the claims
table with the paper's number, ours per profile, verdict and evidence, methodology, what was easy
and difficult, cost, how to rerun) and each chapter's claims box and verdict-carrying captions —
all computed from :mod:`perceptual.study.claims` on the results, never typed.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from perceptual.core import paths, store
from perceptual.study import profiles

from perceptual.book.pages import MISSING, Table, _duration, _image_uri, is_missing

# ---------------------------------------------------------------------------------------------
# the paper's claims in the book: the landing page's summary, each chapter's claims, captions

# claim → the chapter whose figures and tables show its evidence (claims name the paper's place)
CLAIM_CHAPTERS = {"C1": "objective", "C2": "objective", "C3": "objective", "C11": "objective", "C4": "speed",
                  "C5": "qualitative", "C6": "inversion", "C7": "inversion", "C8": "superres", "C9": "superres",
                  "C10": "superres"}
CHAPTER_TITLES = {"objective": "Fig. 5", "speed": "Table 1", "qualitative": "Figs. 6–7", "inversion": "Figs. 3–4",
                  "superres": "Figs. 8–9", "claims": "all claims"}
# what the paper reports for each claim, in a few words (its number where it prints one)
PAPER_SAYS = {
    "C1": "50–100 L-BFGS iterations at 256²", "C2": "50–100 iterations at 512² and 1024²",
    "C3": "content image's objective far above both", "C4": "1,060× vs 500 iterations at 256² (Titan X)",
    "C5": "qualitatively similar to the baseline", "C6": "structure kept; colour, texture lost with depth",
    "C7": "larger-scale structure with depth", "C8": "ℓ_pixel above ℓ_feat (numbers only in Figs. 8–9)",
    "C9": "sharper edges, finer detail with ℓ_feat", "C10": "a slight cross-hatch with ℓ_feat",
    "C11": "works at 512² and 1024² (trained at 256²)",
}
# a few words naming each claim in the one-line answer
CLAIM_TOPICS = {"C1": "objective vs L-BFGS at the training size", "C2": "objective at larger sizes",
                "C3": "content image's objective", "C4": "speed (Table 1)", "C5": "likeness to the baseline",
                "C6": "feature reconstructions", "C7": "style reconstructions", "C8": "ℓ_pixel's PSNR/SSIM lead",
                "C9": "ℓ_feat's detail", "C10": "ℓ_feat's cross-hatch", "C11": "larger sizes (Fig. 7)"}
VERDICT_ORDER = ("reproduced", "partly", "inconclusive", "not reproduced", "not tested")
_CLAIMS_CACHE: dict[tuple[str, str], Any] = {}


def claim_chapter(claim: str, where: str = "") -> str:
    """The chapter showing ``claim``'s evidence: :data:`CLAIM_CHAPTERS`, else from where the paper makes it."""
    if claim in CLAIM_CHAPTERS:
        return CLAIM_CHAPTERS[claim]
    for pattern, chapter in ((r"Fig\. ?[34]\b", "inversion"), (r"Fig\. ?5\b", "objective"), (r"Figs?\. ?[67]\b", "qualitative"),
                             (r"Table 1", "speed"), (r"Figs?\. ?[89]|§4\.2", "superres")):
        if re.search(pattern, where):
            return chapter
    return "claims"


def chapter_source(chapter: str) -> str:
    """``book/CHAPTER.md``'s text ("" when there is no such chapter)."""
    source = paths.book_dir() / f"{chapter}.md"
    return source.read_text(encoding="utf-8") if source.is_file() else ""


def has_claims_box(chapter: str) -> bool:
    """Whether ``book/CHAPTER.md`` opens with :func:`chapter_claims` (its ``#claims-CHAPTER`` anchor)."""
    return "chapter_claims(" in chapter_source(chapter)


def more(label: str, text: str) -> str:
    """``text`` behind a click: an HTML ``<details>`` whose summary is ``label``."""
    return f"<details class='claim-rule'><summary>{label}</summary>{html.escape(text)}</details>"


def figure_link(chapter: str, where: str) -> str:
    """``where`` (the paper's "Fig. 3", "Figs. 8–9, §4.2", …) as HTML, its first figure number, or
    both ends of a range, linked to that figure in ``chapter`` where the chapter labels it
    (``pages.figure(..., label="fig3")``, or the label ``"fig3"`` given otherwise)."""
    text = chapter_source(chapter)
    found = re.search(r"(Figs?\. ?)(\d+)(?:(\s*[–-]\s*)(\d+))?", where)
    if not found:
        return html.escape(where)

    def link(shown: str, number: str) -> str:
        shown = html.escape(shown)
        return f"<a href='{chapter}.html#fig{number}'>{shown}</a>" if f'"fig{number}"' in text else shown

    prefix, first, dash, last = found.groups()
    linked = link(prefix + first, first) + (html.escape(dash) + link(last, last) if last else "")
    a, b = found.span()
    return f"{html.escape(where[:a])}{linked}{html.escape(where[b:])}"


def claims_table(profile: str | None = None, root: Path | None = None):
    """:func:`perceptual.study.claims.evaluate` for ``profile`` under ``root`` (default: this
    build's results folder), computed once per kernel. None when the claims cannot be evaluated."""
    from perceptual.study import claims

    root = Path(root) if root else paths.results_dir()
    key = (str(profile), str(root))
    if key not in _CLAIMS_CACHE:
        _CLAIMS_CACHE[key] = claims.evaluate(profile, root) if profile else None
    return _CLAIMS_CACHE[key]


def _reason(row) -> str:
    """Why a claim is inconclusive or untested, where the claims table says (its ``reason``)."""
    why = getattr(row, "reason", "")
    return "" if is_missing(why) or not str(why).strip() else str(why).strip()


def verdict_badge(verdict: str) -> str:
    slug = re.sub(r"[^a-z]+", "-", str(verdict).lower()).strip("-")
    return f"<span class='verdict verdict-{slug}'>{html.escape(str(verdict))}</span>"


def tally(table) -> str:
    """"7 reproduced, 1 partly, 3 not reproduced": every verdict present, in a fixed order (any
    verdict not in :data:`VERDICT_ORDER` after those). Claims shown apart (a true ``apart`` or
    false ``in_tally`` column) are left out."""
    rows = table
    for column, keep in (("apart", False), ("in_tally", True)):
        if column in rows:
            rows = rows[rows[column].astype(bool) == keep]
    counts = rows.verdict.value_counts()
    order = [v for v in VERDICT_ORDER if v in counts] + sorted(v for v in counts.index if v not in VERDICT_ORDER)
    return ", ".join(f"{counts[v]} {v}" for v in order)


def verdicts_of(ctx, *ids: str) -> str:
    """For a caption: "C1 not reproduced · C2 not reproduced" (nothing when the claims are not available)."""
    t = claims_table(ctx.profile.name)
    if t is None:
        return ""
    t = t.set_index("claim")
    return ", ".join(f"{i} ({t.verdict[i]})" for i in ids if i in t.index)


def figure_caption(ctx, label: str, ids: Iterable[str], text: str, table: Path | None = None) -> str:
    """Markdown caption "**Fig. 5.** Tests C1 (not reproduced), C2 (…). text": the claims' computed
    verdicts, or none; never a fixed word."""
    verdicts = verdicts_of(ctx, *ids)
    head = f"**{label}.**" + (f" Tests {verdicts}." if verdicts else "")
    summary = store.read_meta(table).get("summary") if table is not None else None
    return f"{head} {text}" + (f" {summary}." if summary else "")


def chapter_claims(chapter: str, ctx):
    """The box a chapter opens with: the claims whose evidence it shows, each with what was
    measured in a few words (all its numbers and the rule a click away), its computed verdict and,
    when inconclusive, why (an HTML display)."""
    from IPython.display import HTML

    t = claims_table(ctx.profile.name)
    if t is None:
        return HTML("")
    rows = [r for r in t.itertuples() if claim_chapter(r.claim, r.where) == chapter]
    if not rows:
        return HTML("")
    body = "".join(
        f"<tr><td><b>{html.escape(r.claim)}</b> ({html.escape(r.where)}): {html.escape(r.paper)}{more('rule', r.rule)}</td>"
        f"<td>{html.escape(ours_short(r.claim, r.evidence))}{more('all the numbers', r.evidence)}"
        + (f"<div class='claim-rule'>Inconclusive because: {html.escape(_reason(r))}</div>" if _reason(r) else "") +
        f"</td><td>{verdict_badge(r.verdict)}" + ("<div class='claim-rule'>shown apart, not in the tally</div>"
                                                  if bool(getattr(r, "apart", False)) else "") + "</td></tr>" for r in rows)
    return HTML(f"<div class='people-table chapter-claims' id=\"claims-{html.escape(chapter)}\"><table class='table'><caption>The paper's claims this "
                f"chapter tests, with the verdicts computed from profile {html.escape(ctx.profile.name)}'s "
                f"results</caption><thead><tr><th>claim</th><th>measured here</th><th>verdict</th></tr></thead>"
                f"<tbody>{body}</tbody></table></div>")



# ---------------------------------------------------------------------------------------------
# the landing page: a reproducibility report's first page


def report_profiles(profile: str) -> list[tuple[str, Path, str]]:
    """(profile, results root, label) whose claims the landing page shows: the published runs
    (the study's answer) first, then this build's profile if it is another run."""
    from perceptual.book import site

    published = paths.published_dir()
    out = [(p, published, f"{p} (published)") for p in site.published_profiles()]
    here = paths.results_dir()
    if (here / profile).is_dir() and not any(p == profile and Path(r).resolve() == here.resolve() for p, r, _ in out):
        out.append((profile, here, profile))
    return out


def _first(pattern: str, values: Iterable[str]) -> str | None:
    for v in values:
        m = re.search(pattern, v)
        if m:
            return m
    return None


# claim → (pattern in its evidence, format of the groups): the measured number(s) in a few words
SHORT_SEARCH = {
    "C5": (r"Eq\. 5 ([\d.]+)×", "objective {0}× the baseline's"),
    "C9": (r"ℓ_feat ([\d.]+) vs ℓ_pixel ([\d.]+)", "edge energy ℓ_feat {0}, ℓ_pixel {1} (truth = 1)"),
    "C10": (r"median ([\d.]+)×", "periodic peak {0}× ℓ_pixel's"),
    "C11": (r"worst larger size ([\d.]+)×", "objective share {0}× the training size's at most"),
}
# claim → (pattern, format of its first and last match): how a measure changes with depth
SHORT_TREND = {"C6": (r"([\d.]+) dB", "PSNR {0} → {1} dB with depth"),
               "C7": (r"([\d.]+) px", "wavelength {0} → {1} px with depth")}


def ours_short(claim: str, evidence: str) -> str:
    """A claim's measured evidence in a few words for the landing table (the chapter shows all of
    it): numbers picked out of ``evidence``; its first clause, shortened, when the pattern fails."""
    e = evidence.split(". Inconclusive —")[0]  # the measurement, not the reason it cannot be judged
    try:
        if claim in ("C1", "C2"):  # the calibration decides where it was measured; else the paper's rule
            cal = re.findall(r"(\d+) px \([^)]*\): the authors' network at iteration (≥?[\d.]+), ours at (≥?[\d.]+)", e)
            if cal:
                return "L-BFGS matches ours at iteration " + ", ".join(f"{o} (the authors' network: {a}; {s} px)"
                                                                       for s, a, o in cal)
            found = re.findall(r"(\d+)²: network.*?\(median (≥?\d+(?:\.\d+)?)", e)
            if found:
                return "L-BFGS matches it at iteration " + ", ".join(f"{k} ({s}²)" for s, k in found)
        if claim == "C3":
            found = [float(x) for x in re.findall(r"content image ≥ ([\d.]+)×", e)]
            if found:
                return f"content image ≥ {min(found):.1f}× both"
        if claim == "C4":
            found = [float(x.replace(",", "")) for x in re.findall(r"([\d,]+)× vs 500", e)]
            ms = re.findall(r"(\d+)²: ([\d,]+) ms vs one L-BFGS iteration ([\d,]+) ms", e)
            if found:
                return (f"{min(found):,.0f}–{max(found):,.0f}× vs 500 iterations" +
                        (", faster than one at every size" if ms and all(float(a.replace(',', '')) < float(b.replace(',', ''))
                                                                       for _, a, b in ms) else ""))
        if claim in SHORT_SEARCH:
            pattern, fmt = SHORT_SEARCH[claim]
            m = re.search(pattern, e)
            if m:
                return fmt.format(*m.groups())
        if claim in SHORT_TREND:
            pattern, fmt = SHORT_TREND[claim]
            found = re.findall(pattern, e.split(" (")[0])  # the layers' values, not a control's after them
            if len(found) >= 2:
                return fmt.format(found[0], found[-1])
        if claim == "C8":
            found = re.findall(r"in (\d+) of (\d+)", e)
            if len(found) >= 2:
                return f"ℓ_pixel higher in {found[0][0]}/{found[0][1]} (PSNR), {found[1][0]}/{found[1][1]} (SSIM)"
    except (ValueError, AttributeError):
        pass
    first = re.split(r";\s", e, maxsplit=1)[0]
    return first if len(first) <= 90 else first[:88].rstrip() + "…"


def _thumb_files(claim: str, folder: Path) -> list[Path]:
    """The images that say ``claim`` at a glance, if any: (before, after) pairs."""
    g = lambda pattern: sorted(folder.glob(pattern))  # noqa: E731
    pick = []
    if claim == "C5":
        gatys, ours = g("qualitative/gatys_*.png"), g("qualitative/ours_*.png")
        pick = [gatys[0], ours[0]] if gatys and ours else []
    elif claim == "C6":
        layers = g("inversion/feature_relu*.png")
        pick = [folder / "inversion/feature_target.png", layers[-1]] if layers else []
    elif claim == "C7":
        layers = g("inversion/style_relu*.png")
        pick = [layers[0], layers[-1]] if len(layers) > 1 else []
    elif claim in ("C9", "C10"):
        pixel, feat = g("superres/*_x4_pixel_hm.png"), g("superres/*_x4_feat_hm.png")
        pick = [pixel[0], feat[0]] if pixel and feat else []
    elif claim == "C11":
        big = g("qualitative/ours_*.png")
        pick = [big[-1]] if big else []
    return [p for p in pick if p.is_file()]


def _thumbnail(files: list[Path], height: int = 72, crop: bool = False) -> str:
    """A small side-by-side strip of ``files`` as a data URI ("" when there are none)."""
    from PIL import Image

    if not files:
        return ""
    tiles = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            if crop:  # the middle third: detail, not the whole picture
                w, h = im.size
                im = im.crop((w // 3, h // 3, 2 * w // 3, 2 * h // 3))
            tiles.append(im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS))
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 2 * (len(tiles) - 1), height), "white")
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width + 2
    return _image_uri(strip, lossless=True)


def landing_claims(profile: str):
    """The landing page's claims table: each claim, the paper's number, ours and the verdict per
    profile, a thumbnail where a picture says it, and a link to the chapter with its evidence."""
    from IPython.display import HTML

    runs = [(p, root, label, claims_table(p, root)) for p, root, label in report_profiles(profile)]
    runs = [r for r in runs if r[3] is not None and len(r[3])]
    if not runs:
        return HTML("<p>No claims could be evaluated: no results for this profile.</p>")
    base = runs[0][3]
    head = "".join(f"<th>ours: {html.escape(label)}</th>" for _, _, label, _ in runs)
    body = []
    for r in base.itertuples():
        chapter = claim_chapter(r.claim, r.where)
        cells = []
        for _, _, _, t in runs:
            row = t[t.claim == r.claim]
            if len(row):
                x = row.iloc[0]
                why = _reason(x)
                cells.append(f"<td>{html.escape(ours_short(r.claim, x.evidence))}<br>{verdict_badge(x.verdict)}"
                             + (f"<div class='claim-rule'>{html.escape(why)}</div>" if why else "") + "</td>")
            else:
                cells.append(f"<td>{MISSING}</td>")
        files = _thumb_files(r.claim, runs[0][1] / runs[0][0])
        thumb = _thumbnail(files, crop=r.claim in ("C9", "C10"))
        names = " and ".join(f.stem.replace("_", " ") for f in files)
        link = f"{chapter}.html" + (f"#claims-{chapter}" if has_claims_box(chapter) else "")
        pic = (f"<a href='{link}'><img class='claim-thumb' src='{thumb}' alt='{html.escape(r.claim)}: {html.escape(names)}'></a>"
               if thumb else "")
        apart = " · shown apart, not in the tally" if bool(getattr(r, "apart", False)) else ""
        body.append(f"<tr><td><a class='claim-link' href='{link}'><b>{html.escape(r.claim)}</b></a> "
                     f"{html.escape(r.paper)}<div class='claim-rule'>{figure_link(chapter, r.where)}{apart} · evidence: "
                     f"<a href='{link}'>{html.escape(CHAPTER_TITLES.get(chapter, chapter))}</a></div></td>"
                     f"<td>{html.escape(PAPER_SAYS.get(r.claim, r.where))}</td>{''.join(cells)}<td>{pic}</td></tr>")
    return HTML(f"<div class='people-table claims-summary'><table class='table'><thead><tr><th>claim</th>"
                f"<th>the paper</th>{head}<th>evidence</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
                "<p class='table-note'>Verdicts are computed from the results by each claim's stated rule "
                "(the chapter linked from each claim shows its figures, tables and rule); none is typed by hand.</p>"
                "</div>")


def answer(profile: str) -> str:
    """The one-line answer (Markdown): the tally of the study's answer and which claims held."""
    runs = [(p, root, label, claims_table(p, root)) for p, root, label in report_profiles(profile)]
    runs = [r for r in runs if r[3] is not None and len(r[3])]
    if not runs:
        return "**No answer yet:** no results to evaluate the paper's claims on."
    p, root, label, t = runs[0]
    apart = t[t["apart"].astype(bool)] if "apart" in t else t.iloc[:0]
    counted = t.drop(apart.index)
    by = {v: [CLAIM_TOPICS.get(c, c) for c in counted[counted.verdict == v].claim] for v in counted.verdict.unique()}
    parts = [f"{label}: {'; '.join(by[v])}" for v, label in (("reproduced", "Held"), ("partly", "Partly"),
                                                             ("inconclusive", "Inconclusive"),
                                                             ("not reproduced", "Not reproduced")) if by.get(v)]
    extra = "".join(f" {r.claim} ({CLAIM_TOPICS.get(r.claim, r.claim)}) is shown apart, not counted: {r.verdict}."
                    for r in apart.itertuples())
    return (f"**Answer:** on the `{p}` run ({_cost(p, root)}), of the paper's {len(counted)} claims tested, "
            f"{tally(t)}. " + ". ".join(parts) + "." + extra)


def _cost(profile: str, root: Path) -> str:
    from perceptual.study import claims

    c = claims.cost(profile, root)
    took = f"{_duration(c['seconds'])} of computation" if c.get("seconds") else "computation time not recorded"
    return f"{took} on {c.get('hardware') or 'unrecorded hardware'}"


def methodology(profile: str) -> list[str]:
    """Five lines: scope, data, loss network, compute, profiles — from the profiles and results."""
    runs = report_profiles(profile)
    p0 = profiles.get(runs[0][0]) if runs else profiles.get(profile)
    paper = profiles.PROFILES["paper"]
    data = ("images shipped with scikit-image" if p0.data == "demo" else
            f"COCO val2014 photos ({p0.content_dir}) for style transfer, {', '.join(p0.train_dirs)} for training, "
            "Set5, Set14 and BSD100 for super-resolution, the paper's style images")
    return [
        f"**Scope:** the paper's {len(claims_table(*runs[0][:2]) if runs else [])} testable claims about style "
        "transfer (Figs. 3–7, Table 1) and ×4/×8 super-resolution (Figs. 8–9), each with a rule that turns "
        "the measurement into a verdict.",
        f"**Data:** {data}.",
        f"**Loss network:** {p0.loss_network} (the paper: {paper.loss_network}, the authors' Caffe VGG-16, which "
        "cannot be had offline); every other deviation is a row of the Methods chapter's table.",
        f"**Compute:** {'; '.join(f'`{p}`: {_cost(p, r)}' for p, r, _ in runs)}.",
        f"**Profiles:** `{p0.name}` — {p0.description}. Methods lists its settings beside the paper's.",
    ]


def _safe(fn: Callable[[], str | None]) -> str | None:
    try:
        return fn()
    except Exception:  # a fact that cannot be computed from these results is left out
        return None


def easy_and_difficult(profile: str) -> tuple[list[str], list[str]]:
    """Facts for "what was easy / what was difficult", computed from the results where they can
    be (each left out when its table is absent)."""
    import pandas as pd

    from perceptual.method import transformer
    from perceptual.study import claims

    runs = report_profiles(profile)
    p, root = (runs[0][0], runs[0][1]) if runs else (profile, paths.results_dir())
    res = claims.Results(p, root)
    prof = profiles.get(p)
    paper = profiles.PROFILES["paper"]

    def params():
        n = transformer.count_parameters(transformer.StyleNet())
        return f"The networks are fully specified: our style network has {n:,} parameters, the paper's 1,679,235."

    def bicubic():
        s = claims.sr_table(res)
        b = s[(s.method == "bicubic") & (s.factor == 4)].set_index("dataset").psnr
        published = {"Set5": 28.42, "Set14": 26.00, "BSD100": 25.96}
        diff = max(abs(b[d] - v) for d, v in published.items() if d in b)
        return (f"The SR evaluation protocol is standard: our bicubic ×4 baseline is within {diff:.2f} dB of the "
                "published values on Set5, Set14 and BSD100.")

    def speed():
        sp = res.table("speed/speed.csv")
        return (f"Table 1's shape holds even on {sp.hardware.iloc[0]}: the network is faster than one L-BFGS "
                f"iteration at every size, and {sp.speedup_500.min():,.0f}× or more faster than 500.")

    def schedule():
        return (f"Compute: the paper trains each style network for {paper.style.iterations:,} iterations at "
                f"{paper.style.image_size}² on a GPU; this run afforded {prof.style.iterations:,} at "
                f"{prof.style.image_size}², and for SR {profiles.sr_schedule(prof)} instead of {paper.sr.iterations:,}.")

    def sr_networks():
        s = claims.sr_table(res)
        x = s[s.factor == 4].pivot_table(index="dataset", columns="method", values="psnr")
        at4 = ", ".join(f"ℓ_{m} {(x[m] - x.bicubic).mean():+.1f} dB".replace("-", "−") for m in ("pixel", "feat")
                        if m in x)
        gate = claims.sr_gate(s)
        if gate is None:
            return f"The SR networks trained this short pass the competence gate: on ×4, against bicubic, {at4}."
        return (f"Super-resolution is hard to train this short: on ×4, against bicubic (mean over the sets), {at4}; "
                f"{gate.reason.removesuffix(' (competence gate)')}, so the SR claims (C8–C10) are inconclusive.")

    def weights():
        return ("The authors' Caffe VGG-16 cannot be downloaded offline; an 8-bit VGG-19 stands in, which changes "
                "every loss value, so the paper's loss weights and its '50–100 iterations' do not transfer exactly.")

    def numbers():
        return ("The paper prints its SR numbers only inside Figs. 8–9 and gives no loss weights; the authors' "
                "code (per-style λ, Gram normalisation) fills the gaps, each choice listed in Methods.")

    easy = [f for f in (_safe(params), _safe(bicubic), _safe(speed)) if f]
    hard = [f for f in (_safe(weights), _safe(schedule), _safe(sr_networks), _safe(numbers)) if f]
    del pd
    return easy, hard


def cost_table(profile: str) -> Table:
    """What each profile costs: measured where results exist, the FLOP estimate for the paper's."""
    from perceptual.study import claims

    rows, seen = [], set()
    for p, root, label in report_profiles(profile):
        c = claims.cost(p, root)
        rows.append([label, profiles.get(p).description,
                     f"{_duration(c['seconds'])} (measured)" if c.get("seconds") else MISSING,
                     str(c.get("hardware") or MISSING)])
        seen.add(p)
    try:
        from perceptual.study import estimate

        e = estimate.estimate(profiles.get("paper", gpu=True))
        rows.append(["paper", profiles.PROFILES["paper"].description,
                     f"≈ {e.hours(1):.0f} h, ≈ {e.hours(8):.0f} h on 8 GPUs (estimated from FLOPs)",
                     "GTX Titan X, the paper's GPU"])
    except Exception:  # the estimate needs torch's FLOP counter; the table stands without it
        pass
    if "demo" not in seen:
        rows.append(["demo", profiles.PROFILES["demo"].description, "≈ 5 min (after setup)", "any 2-core CPU"])
    return Table(["profile", "what it is", "time", "hardware"], rows,
                 ["Measured: the wall time of the run's computations, from its tables' records."])


def rerun_line(profile: str) -> str:
    """How to rerun, in one line (Markdown)."""
    return (f"**Rerun:** `make reproduce PROFILE={profile} DATA_ROOT=../shared/data` recomputes this answer "
            "(`make compare PROFILE=cpu` checks it against the published numbers); `make book` renders the "
            "published results as they are.")


