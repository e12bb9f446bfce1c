"""What a JSON Schema asks for, as field specs the extractor can look for, and the rule that
makes every answer valid.

The validity rule (documented in docs/extraction.md): extracted `data` always holds every
property the schema declares, and validates against the schema **with null allowed
everywhere** (`nullable()`): a value the document does not contain is null, never invented,
even where the schema says the property is required and not nullable. The result lists such
required-but-missing paths separately, so a caller who needs strict validity sees why not.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from docmill.errors import InvalidInput

KINDS = {"organization", "address", "person", "amount", "currency", "date", "time", "identifier",
         "tax_id", "iban", "bic", "email", "phone", "url", "percent", "quantity", "text",
         "integer", "boolean"}

# name words -> kind, for schemas without x-docmill-kind (users' own types)
_NAME_KINDS: list[tuple[str, tuple[str, ...]]] = [
    ("email", ("email", "mail")),
    ("phone", ("phone", "telephone", "tel", "mobile", "fax")),
    ("url", ("url", "website", "web", "homepage")),
    ("iban", ("iban",)),
    ("bic", ("bic", "swift")),
    ("tax_id", ("vat", "gst", "tin", "gstin", "tax_id", "taxid", "ustid", "siret", "siren",
                "ein", "nif", "cif", "rfc", "ruc", "abn")),
    ("currency", ("currency",)),
    ("date", ("date", "dob", "birthday", "day")),
    ("time", ("time",)),
    ("percent", ("percent", "percentage", "rate", "pct")),
    ("address", ("address", "street", "addr")),
    ("organization", ("company", "issuer", "vendor", "supplier", "merchant", "seller", "store",
                      "shop", "bank", "provider", "organization", "organisation", "employer",
                      "business", "firm")),
    ("person", ("name", "holder", "recipient", "customer", "patient", "employee", "buyer",
                "surname", "contact")),
    ("amount", ("total", "amount", "price", "cost", "subtotal", "tax", "balance", "fee",
                "sum", "due", "paid", "discount", "salary", "payment")),
    ("quantity", ("qty", "quantity", "count", "units")),
    ("identifier", ("number", "no", "id", "code", "reference", "ref", "num")),
]


def words_of(name: str) -> list[str]:
    """'invoiceNumber' / 'invoice_number' / 'Invoice-Number' -> ['invoice', 'number']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^0-9A-Za-zÀ-ÿ]+", spaced.lower()) if w]


@dataclass
class FieldSpec:
    path: tuple[str, ...]  # keys from the root object
    name: str
    schema: dict[str, Any]
    types: set[str]
    kind: str
    labels: list[str]  # normalised label phrases, best first
    exclude: set[str] = field(default_factory=set)
    position: str | None = None
    required: bool = False
    items: list[FieldSpec] | None = None  # for arrays of objects: the item's fields

    @property
    def pointer(self) -> str:
        return "/".join(self.path)


def _types_of(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return set(t)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            out: set[str] = set()
            for sub in schema[key]:
                if isinstance(sub, dict):
                    out |= _types_of(sub)
            return out
    if "enum" in schema:
        return {type(v).__name__.replace("str", "string").replace("int", "integer")
                .replace("float", "number").replace("bool", "boolean") for v in schema["enum"]
                if v is not None}
    if "properties" in schema:
        return {"object"}
    return {"string"}


def resolve(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Follow a local `$ref` (#/$defs/..., #/definitions/...)."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/") or depth > 20:
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            return schema
        target = target[part]
    merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return resolve(merged, root, depth + 1)


def _kind(name: str, schema: dict[str, Any], types: set[str]) -> str:
    declared = schema.get("x-docmill-kind")
    if isinstance(declared, str) and declared in KINDS:
        return declared
    fmt = schema.get("format")
    if fmt in ("date", "date-time"):
        return "date"
    if fmt == "email":
        return "email"
    if fmt in ("uri", "url"):
        return "url"
    if fmt == "time":
        return "time"
    if types == {"boolean"}:
        return "boolean"
    words = words_of(name) + words_of(str(schema.get("title", "")))
    for kind, keys in _NAME_KINDS:
        if any(w in keys for w in words):
            if kind in ("amount", "quantity", "percent") and not types & {"number", "integer",
                                                                           "string"}:
                continue
            if kind == "identifier" and types & {"number", "integer"} and not types & {"string"}:
                return "integer" if "integer" in types else "amount"
            return kind
    if types & {"integer"} and not types & {"number", "string"}:
        return "integer"
    if types & {"number"} and not types & {"string"}:
        return "amount"
    return "text"


def normalise_label(text: str) -> str:
    return " ".join(re.sub(r"[^\w%#°/&.'-]+", " ", text.lower()).replace("_", " ").split())


def _labels(name: str, schema: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for syn in schema.get("x-docmill-synonyms") or []:
        if isinstance(syn, str):
            out.append(syn)
    title = schema.get("title")
    if isinstance(title, str):
        out.append(title)
    out.append(" ".join(words_of(name)))
    # a short description ("Invoice number") may itself be a label; long ones are prose
    desc = schema.get("description")
    if isinstance(desc, str) and len(desc.split()) <= 4:
        out.append(desc.rstrip("."))
    seen: list[str] = []
    for label in out:
        norm = normalise_label(label)
        if norm and norm not in seen:
            seen.append(norm)
    return seen


def field_specs(schema: dict[str, Any]) -> list[FieldSpec]:
    """The root object's properties as specs; arrays of objects carry their item specs.
    Nested plain objects are flattened into paths (address/city...)."""
    root = schema
    schema = resolve(schema, root)
    return _object_specs(schema, root, ())


def _object_specs(schema: dict[str, Any], root: dict[str, Any],
                  prefix: tuple[str, ...]) -> list[FieldSpec]:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return []
    required = set(schema.get("required") or [])
    specs: list[FieldSpec] = []
    for name, sub in props.items():
        if sub is True:
            sub = {}  # anything goes: looked for as text
        if not isinstance(sub, dict):
            continue
        sub = resolve(sub, root)
        types = _types_of(sub) - {"null"}
        path = prefix + (name,)
        if "object" in types and isinstance(sub.get("properties"), dict):
            specs += _object_specs(sub, root, path)
            continue
        spec = FieldSpec(path, name, sub, types, _kind(name, sub, types), _labels(name, sub),
                         {normalise_label(x) for x in sub.get("x-docmill-exclude") or []
                          if isinstance(x, str)},
                         sub.get("x-docmill-position"), name in required)
        if "array" in types:
            items = sub.get("items")
            items = resolve(items, root) if isinstance(items, dict) else {}
            if isinstance(items.get("properties"), dict):
                spec.items = _object_specs(items, root, ())
            else:
                item_types = _types_of(items) - {"null"} if items else {"string"}
                spec.items = None
                spec.kind = _kind(name, items, item_types) if items else "text"
        specs.append(spec)
    return specs


def check_schema(schema: Any) -> dict[str, Any]:
    """A usable object schema, or InvalidInput with the reason."""
    if not isinstance(schema, dict):
        raise InvalidInput("schema must be a JSON object")
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(f"invalid JSON Schema: {exc.message}") from exc
    root = resolve(schema, schema)
    if "object" not in _types_of(root) or not isinstance(root.get("properties"), dict):
        raise InvalidInput("schema must describe an object with properties")
    return schema


def nullable(schema: Any) -> Any:
    """A copy of the schema in which every value may also be null."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key in ("properties", "$defs", "definitions", "patternProperties"):
                out[key] = {k: visit(v) for k, v in value.items()} if isinstance(value, dict) \
                    else value
            elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf",
                         "prefixItems", "not", "if", "then", "else", "contains"):
                out[key] = visit(value)
            else:
                out[key] = value
        if "type" in out:
            t = out["type"]
            if isinstance(t, str) and t != "null":
                out["type"] = [t, "null"]
            elif isinstance(t, list) and "null" not in t:
                out["type"] = [*t, "null"]
        if "enum" in out and isinstance(out["enum"], list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if "const" in out:
            out = {"anyOf": [{"const": out.pop("const")}, {"type": "null"}], **out}
        if "oneOf" in out:  # null would match several branches of a oneOf
            out["anyOf"] = out.pop("oneOf")
        return out

    result = visit(schema)
    if isinstance(result, dict) and "type" in result:
        result["type"] = "object"  # the root itself stays an object
    return result


def validator(schema: dict[str, Any]):
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def skeleton(specs: list[FieldSpec]) -> dict[str, Any]:
    """Every declared property, null."""
    data: dict[str, Any] = {}
    for spec in specs:
        set_path(data, spec.path, None)
    return data


def set_path(data: dict[str, Any], path: tuple[str, ...] | list[Any], value: Any) -> None:
    node: Any = data
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            node = node[key]
    node[path[-1]] = value


def make_valid(data: dict[str, Any], schema: dict[str, Any],
               specs: list[FieldSpec]) -> tuple[dict[str, Any], list[str]]:
    """Null out whatever breaks the nullable schema (a value of the wrong shape, pattern or
    range). Returns the data and the pointers that were dropped."""
    check = validator(nullable(schema))
    dropped: list[str] = []
    for _ in range(50):
        errors = sorted(check.iter_errors(data), key=lambda e: len(e.absolute_path),
                        reverse=True)
        if not errors:
            return data, dropped
        progressed = False
        for error in errors:
            path = list(error.absolute_path)
            if not path:
                continue
            try:
                parent: Any = data
                for key in path[:-1]:
                    parent = parent[key]
                if isinstance(parent, list):
                    del parent[path[-1]]  # a bad item leaves the list, not a null in it
                else:
                    set_path(data, path, None)
            except (KeyError, IndexError, TypeError):
                continue
            dropped.append("/".join(map(str, path)))
            progressed = True
            break
        if not progressed:
            break
    data = skeleton(specs)
    if not check.is_valid(data):  # schemas that forbid even nulls (minProperties, not...)
        data = {}
    return data, dropped


def missing_required(data: dict[str, Any], specs: list[FieldSpec]) -> list[str]:
    out = []
    for spec in specs:
        node: Any = data
        for key in spec.path:
            node = node.get(key) if isinstance(node, dict) else None
        if spec.required and node is None:
            out.append(spec.pointer)
    return out
