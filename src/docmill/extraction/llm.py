"""Optional LLM backend: any OpenAI-compatible chat server (llama.cpp's llama-server, vLLM,
Ollama...) fills the schema, given the document's lines with their positions.

The request asks for JSON constrained by the schema (`response_format: json_schema`, which
those servers turn into a grammar). The answer is trusted only as far as it checks out:
it must parse and validate against the nullable schema, and every value must be found in
the document (a string in its text, a number among its amounts, a date among its dates);
values that are not are dropped to null - a model may not invent what the page does not
say. Off by default (`extract_llm_url` empty); any failure returns None and the caller
keeps the built-in extractor's answer.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx

from docmill.extraction import values as V
from docmill.extraction.layout import Layout
from docmill.extraction.schema import nullable, validator

log = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 12_000


def _strip_hints(schema: Any) -> Any:
    """The schema without x-docmill-* keys (servers' grammar compilers reject unknown keys
    less often than they choke on them)."""
    if isinstance(schema, dict):
        return {k: _strip_hints(v) for k, v in schema.items() if not str(k).startswith("x-")
                and k != "$schema"}
    if isinstance(schema, list):
        return [_strip_hints(v) for v in schema]
    return schema


def positioned_text(layout: Layout) -> str:
    """One line per segment: '[p1 x=36 y=96] Account number:' (points, top-left origin)."""
    lines = []
    for row in layout.rows:
        for seg in row:
            lines.append(f"[p{seg.page} x={seg.box.x0:.0f} y={seg.box.y0:.0f}] {seg.text}")
    text = "\n".join(lines)
    return text[:MAX_PROMPT_CHARS]


def request(url: str, model: str, api_key: str, timeout: float, schema: dict[str, Any],
            layout: Layout, type_name: str | None = None) -> dict[str, Any] | None:
    """Ask the server; the parsed and validated data, or None."""
    target = _strip_hints(nullable(schema))
    system = ("You extract data from documents. Answer with one JSON object that follows the "
              "given JSON schema. Copy values exactly as printed; dates as YYYY-MM-DD; "
              "numbers without currency symbols. Use null for anything the document does not "
              "state. Never guess.")
    user = (f"Document{f' (a {type_name})' if type_name else ''}, one line per text segment "
            f"with its page and position in points:\n\n{positioned_text(layout)}\n\n"
            f"JSON schema of the answer:\n{json.dumps(target, ensure_ascii=False)}")
    body = {"model": model or "default", "temperature": 0, "max_tokens": 2048,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": user}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "extraction", "schema": target}}}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/chat/completions"):
        endpoint += "/chat/completions"
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            response = client.post(endpoint, json=body, headers=headers)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        data = json.loads(_unfence(content))
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        log.warning("LLM extraction failed, using the built-in extractor: %s", exc)
        return None
    if not isinstance(data, dict) or not validator(nullable(schema)).is_valid(data):
        log.warning("LLM answer does not fit the schema, using the built-in extractor")
        return None
    return data


def _unfence(text: str) -> str:
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    return m.group(1) if m else text


def grounded(value: Any, layout: Layout, corpus: str) -> bool:
    """Whether a value the model gave is printed in the document."""
    from rapidfuzz import fuzz

    if value is None:
        return True
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        for seg in layout.segs:
            for f in V.find_amounts(seg.text):
                if abs(float(f.value[0]) - float(value)) < 0.005:
                    return True
            for f in V.find_percents(seg.text):
                if abs(float(f.value) - float(value)) < 0.005:
                    return True
        return False
    if isinstance(value, str):
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            return any(f.value == value for seg in layout.segs
                       for f in V.find_dates(seg.text) + V.find_dates(seg.text, True))
        if len(value) <= 3:
            return value.lower() in corpus or value.upper() in {
                c for c in V.CURRENCY_SYMBOLS.values()}
        return fuzz.partial_ratio(value.lower(), corpus) >= 85
    return True


def ground(data: Any, layout: Layout, corpus: str | None = None) -> Any:
    """Null every leaf value that the document does not contain."""
    corpus = corpus if corpus is not None else "\n".join(s.text for s in layout.segs).lower()
    if isinstance(data, dict):
        return {k: ground(v, layout, corpus) for k, v in data.items()}
    if isinstance(data, list):
        items = [ground(v, layout, corpus) for v in data]
        return [i for i in items if i not in (None, {}) and not (
            isinstance(i, dict) and all(v is None for v in i.values()))]
    return data if grounded(data, layout, corpus) else None
