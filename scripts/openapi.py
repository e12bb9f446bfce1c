"""Writes the published OpenAPI document of each face, docs/openapi/<face>.json, from the
app's own schema (default settings: no DOCMILL_* variables), so users can generate clients.
`--check` writes nothing and exits 1 when a file is missing or not current (CI runs it
through tests/unit/test_openapi_published.py).

    .venv/bin/python scripts/openapi.py [--check]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "docs" / "openapi"
# face -> (title, the route tags it publishes)
FACES: dict[str, tuple[str, tuple[str, ...]]] = {
    "native": ("Docmill native API (/v1)", ("native", "admin", "document types",
                                             "knowledge bases", "pipelines", "ops")),
    "docutray": ("Docmill: the Docutray face", ("docutray",)),
    "convertapi": ("Docmill: the ConvertAPI face", ("convertapi",)),
    "docraptor": ("Docmill: the DocRaptor face", ("docraptor",)),
    "expertai": ("Docmill: the expert.ai Extract face", ("expert.ai",)),
}


def app_schema() -> dict[str, Any]:
    """The app's OpenAPI document under default settings."""
    for name in [n for n in os.environ if n.startswith("DOCMILL_")]:
        del os.environ[name]
    os.environ["DOCMILL_DATA_DIR"] = tempfile.mkdtemp(prefix="docmill-openapi-")
    import warnings

    from docmill.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(run_workers=False, run_sweeper=False).openapi()


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def face_schema(schema: dict[str, Any], title: str, tags: tuple[str, ...]) -> dict[str, Any]:
    """The operations tagged `tags`, with only the components they use."""
    paths: dict[str, Any] = {}
    for path, item in schema["paths"].items():
        kept = {m: op for m, op in item.items() if set(op.get("tags", ())) & set(tags)}
        if kept:
            paths[path] = kept
    components = schema.get("components", {})
    schemas = components.get("schemas", {})
    used: set[str] = set()
    pending = {r.rsplit("/", 1)[1] for r in _refs(paths) if r.startswith("#/components/schemas/")}
    while pending:
        name = pending.pop()
        used.add(name)
        pending |= {r.rsplit("/", 1)[1] for r in _refs(schemas.get(name, {}))
                    if r.startswith("#/components/schemas/")} - used
    schemes = {name for item in paths.values() for op in item.values()
               for requirement in op.get("security", ()) for name in requirement}
    published: dict[str, Any] = {
        "openapi": schema["openapi"],
        "info": {**schema["info"], "title": title},
        "paths": paths,
    }
    kept_components: dict[str, Any] = {}
    if used:
        kept_components["schemas"] = {n: schemas[n] for n in sorted(used)}
    if schemes:
        kept_components["securitySchemes"] = {
            n: components["securitySchemes"][n] for n in sorted(schemes)}
    if kept_components:
        published["components"] = kept_components
    return published


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    schema = app_schema()
    stale = []
    for face, (title, tags) in FACES.items():
        path = OUT / f"{face}.json"
        text = render(face_schema(schema, title, tags))
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    published = {tag for _, tags in FACES.values() for tag in tags}
    unpublished = sorted({t for item in schema["paths"].values() for op in item.values()
                          for t in op.get("tags", ["(untagged)"])} - published)
    if unpublished:
        print(f"openapi: no face publishes the tags {unpublished}", file=sys.stderr)
        return 1
    if stale:
        print("openapi: not current (run scripts/openapi.py): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
