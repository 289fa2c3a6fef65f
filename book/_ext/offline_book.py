"""Sphinx extension of the book (loaded from _config.yml's ``local_extensions``): no thebe.

Jupyter Book 1.x always loads sphinx-thebe. The book has no launch buttons, so thebe never runs,
but its inline script names an unpkg.com URL and is emitted twice per page, which is a script
error in the browser ("Identifier 'THEBE_JS_URL' has already been declared"). Drop its script
and style sheet from every page.
"""
from __future__ import annotations


def _is_thebe(asset) -> bool:
    name = str(getattr(asset, "filename", "") or "")
    body = str(getattr(asset, "attributes", {}).get("body", ""))
    return "thebe" in name or "THEBE_JS_URL" in body


def _drop_thebe(app, pagename, templatename, context, doctree):
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not _is_thebe(a)]


def setup(app):
    app.connect("html-page-context", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
