"""Iframes for WeasyPrint, which does not lay them out: each `<iframe>` replaced by a box of
its size holding its document's body, fetched through the job's guarded fetcher."""

from __future__ import annotations

import re
from typing import Any

from docmill.errors import DocmillError

FRAME_DEPTH = 3  # frames inside frames inside frames, then no more
FRAME_STYLE = ("display: block; overflow: hidden; border: 2px inset #d0d0d0; "
               "box-sizing: border-box; width: {width}; height: {height};")


def _css_length(value: str | None, default: str) -> str:
    value = (value or "").strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return f"{value}px"
    if re.fullmatch(r"\d+(\.\d+)?%", value):
        return value
    return default


def _frame_document(frame: Any, base_url: str | None, fetcher: Any) -> tuple[str, str] | None:
    """(HTML, its base URL) of one iframe: `srcdoc`, else `src` fetched by the job's guarded
    fetcher (refusals and failures land in its warnings); None when there is nothing to show."""
    from urllib.parse import urljoin

    from docmill.engines.html.fetching import NO_BASE

    srcdoc = frame.get("srcdoc")
    if srcdoc is not None:
        return srcdoc, base_url or NO_BASE
    src = (frame.get("src") or "").strip()
    if not src or src.startswith("about:"):
        return None
    url = urljoin(base_url or NO_BASE, src)
    try:
        response = fetcher.fetch(url)
    except DocmillError:
        return None  # the fetcher noted why
    try:
        body = response.read()
        kind = response.content_type or "text/html"
        charset = response.charset or "utf-8"
    finally:
        response.close()
    if kind not in ("text/html", "application/xhtml+xml", "text/plain"):
        fetcher.warnings.append(f"left out the iframe {src[:200]}: it is {kind}, not HTML")
        return None
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    if kind == "text/plain":
        from html import escape

        text = f"<pre>{escape(text)}</pre>"
    return text, getattr(response, "url", None) or url


def inline_iframes(html: str, base_url: str | None, fetcher: Any, depth: int = 0) -> str:
    """Each `<iframe>` replaced by a box of its size holding its document's body. The framed
    document's own style sheets and scripts are dropped (they would apply to the whole page);
    its links are made absolute against its own URL, so its images load through the same
    guard; local files stay unreachable because the fetcher refuses every non-http(s) URL."""
    if "<iframe" not in html.lower():
        return html
    import lxml.html

    from docmill.engines.html.fetching import NO_BASE

    root = lxml.html.document_fromstring(html)
    for frame in list(root.iter("iframe")):
        found = _frame_document(frame, base_url, fetcher) if depth < FRAME_DEPTH else None
        box = lxml.html.Element("div")
        box.set("class", "docmill-iframe")
        style = FRAME_STYLE.format(width=_css_length(frame.get("width"), "300px"),
                                   height=_css_length(frame.get("height"), "150px"))
        box.set("style", style + " " + (frame.get("style") or ""))
        if found is not None:
            inner_html, inner_base = found
            inner_html = inline_iframes(inner_html, inner_base, fetcher, depth + 1)
            inner = lxml.html.document_fromstring(inner_html or "<p></p>")
            if not inner_base.startswith(NO_BASE):
                inner.make_links_absolute(inner_base, resolve_base_href=True)
            for junk in inner.xpath("//script | //style | //link | //noscript"):
                junk.drop_tree()
            body = inner.find("body")
            if body is not None:
                box.text = body.text
                for child in list(body):
                    box.append(child)
        box.tail = frame.tail
        frame.getparent().replace(frame, box)
    return lxml.html.tostring(root, encoding="unicode")
