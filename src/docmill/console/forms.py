"""Operation parameter forms generated from the JSON schemas of `GET /v1/operations`, and the
submitted fields turned back into a `params` object.

Fields are `p.<name>`. Scalars get native inputs (a select for an enum, a checkbox for a
boolean, a number input with the schema's bounds); anything else (arrays, objects) a JSON
text area. An empty field means "the default", so it is left out of `params`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PREFIX = "p."


@dataclass
class Field:
    name: str
    label: str
    kind: str  # select | checkbox | number | text | json
    description: str = ""
    default: Any = None
    choices: list[Any] = field(default_factory=list)
    minimum: Any = None
    maximum: Any = None
    integer: bool = False
    required: bool = False

    @property
    def input_name(self) -> str:
        return PREFIX + self.name

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        return json.dumps(self.default) if self.kind == "json" else str(self.default)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` and drop the `null` branch of an optional value's `anyOf`."""
    for _ in range(5):
        if "$ref" in node:
            node = {**defs.get(node["$ref"].rsplit("/", 1)[-1], {}),
                    **{k: v for k, v in node.items() if k != "$ref"}}
            continue
        branches = [b for b in node.get("anyOf", []) if b.get("type") != "null"]
        if len(branches) == 1 and "anyOf" in node:
            node = {**{k: v for k, v in node.items() if k != "anyOf"}, **branches[0]}
            continue
        return node
    return node


def fields_of(schema: dict[str, Any]) -> list[Field]:
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    out = []
    for name, raw in (schema.get("properties") or {}).items():
        node = _resolve(raw, defs)
        kind = "json"
        kwargs: dict[str, Any] = {}
        if "enum" in node:
            kind, kwargs = "select", {"choices": list(node["enum"])}
        elif node.get("type") == "boolean":
            kind = "checkbox"
        elif node.get("type") in ("integer", "number"):
            kind = "number"
            kwargs = {"integer": node["type"] == "integer",
                      "minimum": node.get("minimum", node.get("exclusiveMinimum")),
                      "maximum": node.get("maximum", node.get("exclusiveMaximum"))}
        elif node.get("type") == "string":
            kind = "text"
        out.append(Field(name=name, label=raw.get("title") or name, kind=kind,
                         description=raw.get("description", ""), default=raw.get("default"),
                         required=name in required, **kwargs))
    return out


def params_from_form(schema: dict[str, Any], form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(params, problems by field name) from submitted form fields."""
    params: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for spec in fields_of(schema):
        if spec.kind == "checkbox":
            if f"{spec.input_name}.present" in form:
                params[spec.name] = spec.input_name in form
            continue
        raw = form.get(spec.input_name)
        if not isinstance(raw, str) or not raw.strip():
            continue
        raw = raw.strip()
        try:
            params[spec.name] = _convert(spec, raw)
        except ValueError as exc:
            problems[spec.name] = str(exc)
    return params, problems


def _convert(spec: Field, raw: str) -> Any:
    if spec.kind == "number":
        try:
            return int(raw) if spec.integer else float(raw)
        except ValueError:
            raise ValueError("enter a whole number" if spec.integer
                             else "enter a number") from None
    if spec.kind == "select":
        for choice in spec.choices:
            if str(choice) == raw:
                return choice
        raise ValueError("pick one of the choices")
    if spec.kind == "json":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
    return raw
