"""The engine interface and the operation registry.

An engine is a plain class that knows documents, not HTTP, jobs or tenants. It offers
operations; each operation declares its parameters (a pydantic model), the input types it
accepts (sniffed MIME types) and the formats it produces, so `/v1/operations` and the vendor
faces' converter lists are generated from here. `run` gets local input files, a work folder
and a progress callback, and returns output files (in the work folder) plus result JSON.
An engine module imports its document libraries inside the functions that use them, never
at module level (registry.py says why).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from docmill.errors import InvalidInput, UnsupportedFormat

Progress = Callable[[float, str], None]
"""progress(percent 0-100, phase message); engines call it freely, the runner throttles."""


class Params(BaseModel):
    """Base of every operation's parameters: unknown parameters are an error, not ignored.

    `blob_params` names parameters that hold a blob-store key of the job's own organization
    (set by the core, e.g. a document type's taught model): the runner hands the engine the
    path of a local copy in their place, or None when the blob is gone."""

    model_config = ConfigDict(extra="forbid")
    blob_params: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class EngineInput:
    path: Path
    name: str
    content_type: str


@dataclass
class EngineOutput:
    path: Path
    content_type: str
    name: str | None = None  # defaults to path.name


@dataclass
class EngineResult:
    outputs: list[EngineOutput] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pages: int = 0  # pages processed (billing-style "cost" for faces that report one)


@dataclass(frozen=True)
class Operation:
    name: str
    summary: str
    params: type[Params]
    accepts: frozenset[str]
    produces: tuple[str, ...]
    min_inputs: int = 1
    max_inputs: int = 1
    engine: str = ""
    in_converters: bool = True  # offered by the vendor faces' converter tables

    def takes(self, content_type: str) -> bool:
        return "*/*" in self.accepts or content_type.split(";")[0] in self.accepts

    def check_takes(self, name: str, content_type: str, who: str = "") -> None:
        """Refuses a file this operation does not accept (`who` says which step asks)."""
        if not self.takes(content_type):
            raise UnsupportedFormat(
                f"{name} is {content_type.split(';')[0]}; {who}{self.name} accepts "
                f"{', '.join(sorted(self.accepts))}")

    @property
    def description(self) -> str:
        """The summary's first sentence, on one line (lists and the console show it)."""
        text = " ".join(self.summary.split())
        head, dot, _ = text.partition(". ")
        return head + "." if dot else text

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "summary": self.summary,
            "engine": self.engine,
            "accepts": sorted(self.accepts),
            "produces": list(self.produces),
            "inputs": {"min": self.min_inputs, "max": self.max_inputs},
            "params_schema": self.params.model_json_schema(),
        }


class Engine(ABC):
    """A family of operations sharing one warm resource (a library, a process pool...)."""

    name: ClassVar[str]
    operations: ClassVar[tuple[Operation, ...]]

    def start(self) -> None:
        """Load heavy resources; called once per worker process before the first job."""

    def stop(self) -> None:
        """Release resources at worker shutdown."""

    @abstractmethod
    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult: ...


# --- shared helpers for engines ------------------------------------------------------------

_RANGE_RE = re.compile(r"^\s*(\d+)?\s*(-\s*(\d+)?)?\s*$")


def parse_page_ranges(spec: str | None, page_count: int) -> list[int]:
    """'1-3,5,8-' -> zero-based page indexes, in order, validated against the page count."""
    if spec is None or not spec.strip() or spec.strip().lower() == "all":
        return list(range(page_count))
    pages: list[int] = []
    for part in spec.split(","):
        match = _RANGE_RE.match(part)
        if not match or (match.group(1) is None and match.group(3) is None):
            raise InvalidInput(f"invalid page range {part.strip()!r}; use e.g. 1-3,5,8-")
        start = int(match.group(1)) if match.group(1) else 1
        end = (int(match.group(3)) if match.group(3) else page_count) if match.group(2) else start
        if start < 1 or end < start:
            raise InvalidInput(f"invalid page range {part.strip()!r}")
        if start > page_count:
            raise InvalidInput(f"page {start} is past the end of a {page_count}-page document")
        pages.extend(range(start - 1, min(end, page_count)))
    return pages


def output_stem(name: str) -> str:
    stem = Path(name).stem or "document"
    return re.sub(r"[^\w.\- ]+", "_", stem)[:100]
