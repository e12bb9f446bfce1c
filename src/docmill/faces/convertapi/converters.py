"""ConvertAPI's `{from}/to/{to}` converters, generated from the engine registry.

Nothing here lists converters by hand. Each registered `Operation` yields pairs:

- targets: an operation with a `format` parameter offers each format it produces (the
  pair fixes `format`); a `family.to-X` operation offers what it produces and X (`pdf.to-pdfa`
  makes a PDF: `pdf -> pdfa`); any other
  operation is a verb (`pdf.merge` -> `merge`, `pdf.split` -> `split`), renamed only where
  the vendor's word differs (`VERB_ALIASES`);
- sources: the extensions of the MIME types it accepts; `any` for an operation accepting
  anything; `web` for one taking HTML (its input is the `Url` parameter); `images` for one
  taking several images at once.

The first operation in registry order wins a pair. Vendor parameter names become the
operation's parameter names by snake-casing (`UserPassword` -> `user_password`) plus the
few renames of `PARAM_ALIASES`; parameters an operation does not have are ignored, as the
vendor ignores unknown ones.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from docmill.core.catalogue import Operation, operations
from docmill.core.inputs import EXTRA_TYPES

# Vendor names that differ from Docmill's ------------------------------------------------------
EXTENSION_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "jfif": "jpg", "tif": "tiff", "htm": "html",
                     "xhtm": "xhtml", "markdown": "md", "text": "txt"}
VERB_ALIASES = {"searchable-pdf": "ocr"}
PARAM_ALIASES = {"PageRange": "pages", "ImageResolution": "dpi", "ImageQuality": "quality",
                 "SplitByRange": "ranges", "RotatePage": "angle", "ImageWidth": "width",
                 "ImageHeight": "height", "PdfTitle": "title", "PdfAuthor": "author",
                 "PdfSubject": "subject", "PdfKeywords": "keywords",
                 "ScaleProportions": "keep_proportions", "JavaScript": "javascript"}
_ALIASES = {vendor.lower(): name for vendor, name in PARAM_ALIASES.items()}
_VENDOR_NAMES = {name: vendor for vendor, name in PARAM_ALIASES.items()}
# Container types an office format is sniffed as: they name no vendor format of their own.
GENERIC_TYPES = frozenset({"application/zip", "application/octet-stream",
                           "application/x-ole-storage", "application/cdfv2",
                           "application/encrypted", "application/vnd.ms-office"})
PDFA_VERSIONS = {"pdfa": "pdfa-2b", "pdfa1": "pdfa-1b", "pdfa1b": "pdfa-1b", "pdfa2": "pdfa-2b",
                 "pdfa2b": "pdfa-2b", "pdfa3": "pdfa-3b", "pdfa3b": "pdfa-3b"}
SPECIAL_SOURCES = ("any", "web", "images")


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


# Vendor parameters whose value, not only name, differs: name -> (param, translate(value)).
VALUE_TRANSLATIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "pdfa": ("pdf_format", lambda v: "pdfa-2b" if _truthy(v) else "pdf"),
    "pdfaversion": ("pdf_format",
                    lambda v: PDFA_VERSIONS.get(str(v).strip().lower().replace("-", ""), v)),
    "pagesize": ("page_size", lambda v: str(v).strip().lower()),
    # seconds before printing, for scripts to finish (JavaScript=true selects Chromium)
    "conversiondelay": ("javascript_delay_ms", lambda v: round(float(v) * 1000)),
}


def vendor_ext(ext: str) -> str:
    ext = ext.strip().lower().lstrip(".")
    return EXTENSION_ALIASES.get(ext, ext)


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@cache
def extensions_for(mime: str) -> tuple[str, ...]:
    """The vendor extensions naming a MIME type: its preferred one and Docmill's own."""
    if mime in GENERIC_TYPES:
        return ()
    found = [e for e, t in EXTRA_TYPES.items() if t == mime]
    preferred = mimetypes.guess_extension(mime, strict=False)
    if preferred:
        found.append(preferred)
    return tuple(dict.fromkeys(vendor_ext(e) for e in found))


def extension_of_type(content_type: str) -> str:
    mime = content_type.split(";")[0].strip().lower()
    exts = extensions_for(mime)
    return exts[0] if exts else ""


@dataclass(frozen=True)
class Converter:
    source: str
    target: str
    operation: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def op(self) -> Operation:
        return operations()[self.operation]

    def describe(self) -> dict[str, Any]:
        op = self.op
        return {"SourceFormat": self.source, "DestinationFormat": self.target,
                "Operation": op.name, "Summary": op.summary,
                "MinFiles": op.min_inputs, "MaxFiles": op.max_inputs,
                "Parameters": vendor_parameters(op, self.fixed)}


def _targets(op: Operation) -> list[tuple[str, dict[str, Any]]]:
    action = op.name.split(".", 1)[-1]
    if "format" in op.params.model_fields:
        return [(vendor_ext(fmt), {"format": fmt}) for fmt in op.produces]
    if action.startswith("to-"):  # what it produces, and the name it gives that (to-pdfa)
        named = vendor_ext(action[3:])
        targets = [vendor_ext(fmt) for fmt in op.produces]
        return [(t, {}) for t in dict.fromkeys(targets + [named])]
    return [(VERB_ALIASES.get(action, action), {})]


def _sources(op: Operation) -> list[str]:
    if "*/*" in op.accepts:
        return ["any"]
    sources = [ext for mime in sorted(op.accepts) for ext in extensions_for(mime)]
    if "text/html" in op.accepts:
        sources.append("web")
    if op.max_inputs > 1 and any(m.startswith("image/") for m in op.accepts):
        sources.append("images")
    return list(dict.fromkeys(sources))


def build_table(ops: Iterable[Operation]) -> dict[tuple[str, str], Converter]:
    table: dict[tuple[str, str], Converter] = {}
    for op in ops:
        if not op.in_converters:
            continue
        for target, fixed in _targets(op):
            for source in _sources(op):
                if source != target:
                    table.setdefault((source, target), Converter(source, target, op.name, fixed))
    return table


@cache
def table() -> dict[tuple[str, str], Converter]:
    return build_table(operations().values())


def find(source: str, target: str) -> Converter | None:
    """The converter for exactly this pair (`any` is a source of its own: the official
    client sends it for every `zip`)."""
    return table().get((vendor_ext(source), vendor_ext(target)))


def known_source(source: str) -> bool:
    source = vendor_ext(source)
    return source in SPECIAL_SOURCES or any(s == source for s, _ in table())


# Parameters ----------------------------------------------------------------------------------

def vendor_parameters(op: Operation, fixed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The operation's parameters under the names the vendor uses for them."""
    out = []
    for name, info in op.params.model_fields.items():
        if name in fixed:
            continue
        vendor = _VENDOR_NAMES.get(name) or "".join(p.capitalize() for p in name.split("_"))
        required = info.is_required()
        default = None if required or callable(info.default) else info.default
        out.append({"Name": vendor, "Docmill": name, "Required": required,
                    "Default": default, "Description": info.description or ""})
    return out


def _literals(annotation: Any) -> tuple[Any, ...]:
    """The values of a `Literal[...]` annotation (also inside `X | None`), else ()."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return tuple(v for arg in get_args(annotation) for v in _literals(arg))


def coerce(info: FieldInfo, value: Any) -> Any:
    """A wire string as the field's literal value: `"90"` for `Literal[90, 180]`, `"AES-256"`
    for `Literal["aes-256"]` (pydantic's lax mode converts numbers and booleans, not
    literals)."""
    choices = _literals(info.annotation)
    if not choices or not isinstance(value, str):
        return value
    text = value.strip()
    for choice in choices:
        if isinstance(choice, bool):
            continue
        if isinstance(choice, int) and re.fullmatch(r"[+-]?\d+", text) and int(text) == choice:
            return choice
        if isinstance(choice, str) and choice.lower() == text.lower():
            return choice
    return value


def translate(converter: Converter, vendor: Mapping[str, tuple[str, Any]],
              extra: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Vendor parameters (lowercase name -> (name as sent, value)) to the operation's.

    Returns the parameters and, for error messages, operation name -> vendor name."""
    fields = converter.op.params.model_fields
    params: dict[str, Any] = {}
    names: dict[str, str] = {}
    for key, (sent, value) in vendor.items():
        if key in VALUE_TRANSLATIONS:
            target, convert = VALUE_TRANSLATIONS[key]
            if target in fields:
                params[target], names[target] = coerce(fields[target], convert(value)), sent
                continue
        target = _ALIASES.get(key) or snake(sent)
        if target in fields and target not in converter.fixed:
            params[target], names[target] = coerce(fields[target], value), sent
    for name, value in (extra or {}).items():
        if name in fields:
            params[name] = value
    params.update(converter.fixed)
    return params, names
