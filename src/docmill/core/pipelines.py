"""Pipeline definitions: per-organization CRUD and the checks a definition passes on save.

A definition is an ordered list of steps. Each step names an operation of the catalogue and
its params, takes its inputs from the run's files (`"input"`) or from earlier steps' outputs
(by step id), may fan out (`foreach: page` splits a PDF into pages and runs once per page,
`foreach: file` runs once per input file), and may branch (`when`: the value at `field` of an
earlier step's result, e.g. `identify.type`'s `document_type_code`, picks a case that sets
the operation and/or params, or `"skip"`). Steps form a graph, not only a line: a step is
ready when the steps it reads from are done. How runs execute it is `core/runs.py`.

Refusals are `InvalidPipeline` (422 on the native API) naming the step at fault, so a
definition that saves can run: unknown operations, bad params (document types named by
code included), inputs an operation cannot take, unknown steps and cycles.
"""

from __future__ import annotations

import graphlib
import mimetypes
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from docmill.core import doctypes
from docmill.core.auth import Principal
from docmill.core.db import session_scope
from docmill.core.models import Pipeline, utcnow
from docmill.core.views import _iso
from docmill.engines.registry import get_operation, operations
from docmill.errors import Conflict, DocmillError, InvalidPipeline, NotFound
from docmill.settings import get_settings

RUN_INPUT = "input"  # the source naming the run's own files
SPLIT_OPERATION = "pdf.split"  # what `foreach: page` runs first, once per run


class Case(BaseModel):
    """What a `when` case sets: another operation and/or params merged over the step's."""

    model_config = ConfigDict(extra="forbid")
    operation: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


Branch = Case | Literal["skip"]


class When(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: str
    field: str = Field("document_type_code", description="Dotted path into the step's "
                       "result; identify.type's chosen code by default.")
    cases: dict[str, Branch] = Field(min_length=1)
    default: Branch = "skip"


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
    operation: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: list[str] = Field(default_factory=lambda: [RUN_INPUT], min_length=1)
    foreach: Literal["page", "file"] | None = None
    when: When | None = None

    def variants(self) -> list[tuple[str | None, Case]]:
        """(case name, what it sets) for every way this step can run; `None` = no branch."""
        if self.when is None:
            return [(None, Case())]
        found: list[tuple[str | None, Case]] = [
            (name, c) for name, c in self.when.cases.items() if isinstance(c, Case)]
        if isinstance(self.when.default, Case):
            found.append(("default", self.when.default))
        return found

    def dependencies(self) -> set[str]:
        deps = {s for s in self.inputs if s != RUN_INPUT}
        if self.when is not None:
            deps.add(self.when.step)
        return deps


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    steps: list[Step] = Field(min_length=1)


def parse_steps(raw: Any) -> list[Step]:
    """The steps of a stored definition (or a run's copy of it)."""
    return [Step.model_validate(s) for s in raw]


def _refuse(step: str | None, message: str) -> InvalidPipeline:
    text = f"step '{step}': {message}" if step else message
    return InvalidPipeline(text, step=step)


def _parse(body: Any, partial: Pipeline | None = None) -> Definition:
    if not isinstance(body, dict):
        raise InvalidPipeline("a pipeline is a JSON object with 'name' and 'steps'")
    if partial is not None:
        body = {"name": partial.name, "description": partial.description,
                "steps": partial.steps, **body}
    try:
        return Definition.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        step = None
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            steps = body.get("steps") or []
            raw = steps[loc[1]] if loc[1] < len(steps) else None
            step = (raw.get("id") if isinstance(raw, dict) else None) or f"#{loc[1] + 1}"
            loc = loc[2:]
        where = ".".join(str(p) for p in loc) or "definition"
        raise _refuse(step, f"{where}: {err['msg']}") from None


def produced_types(operation_name: str) -> set[str]:
    """MIME types of the files an operation makes (from its declared formats)."""
    types = set()
    for fmt in get_operation(operation_name).produces:
        guessed = mimetypes.guess_type(f"x.{fmt}")[0]
        types.add(guessed or "application/octet-stream")
    return types


def accepts(operation_name: str, content_type: str) -> bool:
    return get_operation(operation_name).takes(content_type)


def check(principal: Principal, definition: Definition) -> None:
    """Refuses a definition that could not run (see the module docstring)."""
    settings = get_settings()
    steps = definition.steps
    if len(steps) > settings.pipeline_max_steps:
        raise _refuse(None, f"at most {settings.pipeline_max_steps} steps")
    by_id: dict[str, Step] = {}
    for step in steps:
        if step.id == RUN_INPUT or step.id in by_id:
            raise _refuse(step.id, "step ids must be unique and not 'input'")
        by_id[step.id] = step
    known = set(operations())
    for step in steps:
        for name, case in step.variants():
            op = case.operation or step.operation
            if op is None:
                raise _refuse(step.id, "no operation" + (f" for case '{name}'" if name else ""))
            if op not in known or op == "extract.train":
                raise _refuse(step.id, f"unknown operation '{op}'")
        if not step.variants():
            raise _refuse(step.id, "every case of 'when' is 'skip'")
        for dep in step.dependencies():
            if dep not in by_id:
                raise _refuse(step.id, f"unknown step '{dep}'")
            if dep == step.id:
                raise _refuse(step.id, "a step cannot read its own output")
        if step.when is not None and by_id[step.when.step].foreach:
            raise _refuse(step.id, f"'when' needs a step run once, not the fan-out "
                          f"'{step.when.step}'")
    try:
        order = list(graphlib.TopologicalSorter(
            {s.id: s.dependencies() for s in steps}).static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise _refuse(cycle[0], "cycle " + " -> ".join(cycle)) from None
    for step_id in order:
        _check_step(principal, by_id[step_id], by_id)


def _check_step(principal: Principal, step: Step, by_id: dict[str, Step]) -> None:
    for name, case in step.variants():
        op = case.operation or step.operation or ""
        params = {**step.params, **case.params}
        label = f" (case '{name}')" if name else ""
        try:
            validate_step_params(principal, op, params)
        except DocmillError as exc:
            raise _refuse(step.id, f"{exc.message}{label}") from None
        wanted = {"application/pdf"} if step.foreach == "page" else None
        for source in step.inputs:
            if step.foreach == "page" and not accepts(op, "application/pdf"):
                raise _refuse(step.id, f"{op} does not take the PDF pages 'foreach: page' "
                              "makes")
            if source == RUN_INPUT:
                continue  # checked on each run against its files
            made = set().union(*(produced_types(c.operation or by_id[source].operation or "")
                                 for _, c in by_id[source].variants()))
            usable = {t for t in made if accepts(op, t)}
            if wanted is not None:
                usable &= wanted
            if not usable:
                raise _refuse(step.id, f"{op}{label} cannot take the output of step "
                              f"'{source}' ({', '.join(sorted(made))})")


def validate_step_params(principal: Principal, operation: str,
                         params: dict[str, Any]) -> dict[str, Any]:
    """The params as a step job gets them: document types named by code filled in, then
    checked against the operation's model."""
    from docmill.core.service import validate_params

    filled = doctypes.fill_type_params(principal, operation, params)
    validate_params(operation, filled)
    return filled


# --- CRUD ----------------------------------------------------------------------------------

def _find(session: Any, principal: Principal, ref: str) -> Pipeline:
    """By id or by name, only within the caller's organization (anything else is a 404)."""
    row = session.scalar(select(Pipeline).where(Pipeline.org_id == principal.org_id,
                                                Pipeline.id == ref))
    if row is None:
        row = session.scalar(select(Pipeline).where(Pipeline.org_id == principal.org_id,
                                                    Pipeline.name == ref))
    if row is None:
        raise NotFound(f"pipeline {ref} not found")
    return row


def get_pipeline(principal: Principal, ref: str) -> Pipeline:
    with session_scope(readonly=True) as session:
        return _find(session, principal, ref)


def list_pipelines(principal: Principal) -> list[Pipeline]:
    with session_scope(readonly=True) as session:
        return list(session.scalars(select(Pipeline).where(Pipeline.org_id == principal.org_id)
                                    .order_by(Pipeline.name)).all())


def _dump(definition: Definition) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json", exclude_defaults=True) | {"id": s.id}
            for s in definition.steps]


def create_pipeline(principal: Principal, body: Any) -> Pipeline:
    definition = _parse(body)
    check(principal, definition)
    row = Pipeline(org_id=principal.org_id, name=definition.name,
                   description=definition.description, steps=_dump(definition))
    try:
        with session_scope() as session:
            session.add(row)
    except IntegrityError:
        raise Conflict(f"a pipeline named {definition.name!r} already exists") from None
    return row


def update_pipeline(principal: Principal, ref: str, body: Any) -> Pipeline:
    """Replaces what the body gives (name, description, steps); runs already started keep
    the definition they started with."""
    current = get_pipeline(principal, ref)
    definition = _parse(body, partial=current)
    check(principal, definition)
    try:
        with session_scope() as session:
            row = _find(session, principal, current.id)
            row.name, row.description = definition.name, definition.description
            row.steps = _dump(definition)
            row.version += 1
            row.updated_at = utcnow()
    except IntegrityError:
        raise Conflict(f"a pipeline named {definition.name!r} already exists") from None
    return row


def delete_pipeline(principal: Principal, ref: str) -> None:
    """The definition goes; its runs stay (each holds its own copy) until deleted or expired."""
    with session_scope() as session:
        session.delete(_find(session, principal, ref))


def pipeline_view(row: Pipeline) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description,
            "steps": row.steps, "version": row.version, "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at)}


def value_at(data: Any, path: str) -> Any:
    """`a.b.0.c` into nested dicts and lists; None where the path leads nowhere."""
    for part in (p for p in re.split(r"\.", path) if p):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data

