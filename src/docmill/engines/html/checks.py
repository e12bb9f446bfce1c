"""Checks before rendering: documents nested too deep or too large are refused before
WeasyPrint spends the job's time budget on them, and `strict_html` fails on parse errors."""

from __future__ import annotations

from docmill.errors import InvalidInput


def check_structure(html: str, max_depth: int, max_elements: int) -> None:
    """Refuse documents whose nesting or size would only burn the time budget."""
    from lxml import etree

    parser = etree.HTMLPullParser(events=("start", "end"), recover=True, huge_tree=True)
    depth = deepest = count = 0
    step = 1 << 20
    for offset in range(0, max(len(html), 1), step):
        parser.feed(html[offset:offset + step])
        for event, _element in parser.read_events():
            if event == "start":
                depth += 1
                count += 1
                deepest = max(deepest, depth)
                if deepest > max_depth:
                    raise InvalidInput(f"Document Malformed: elements are nested more than "
                                       f"{max_depth} levels deep")
                if count > max_elements:
                    raise InvalidInput(f"Document Malformed: the document has more than "
                                       f"{max_elements} elements")
            else:
                depth -= 1
    try:
        parser.close()
    except etree.LxmlError:
        pass


IGNORED_PARSE_ERRORS = ("expected-doctype", "unknown-doctype", "non-html-root")


def check_strict(html: str) -> None:
    """`strict`: the HTML5 parser's errors (bar a missing doctype) fail the document."""
    from tinyhtml5.parser import HTMLParser

    parser = HTMLParser()
    parser.parse(html)
    problems = [(pos, code, data) for pos, code, data in parser.errors
                if not code.startswith(IGNORED_PARSE_ERRORS)]
    if problems:
        lines = [f"line {pos[0]}, column {pos[1]}: {code}"
                 + (f" ({data['name']})" if isinstance(data, dict) and data.get("name") else "")
                 for pos, code, data in problems[:10]]
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise InvalidInput("Document Malformed: " + "; ".join(lines) + more)
