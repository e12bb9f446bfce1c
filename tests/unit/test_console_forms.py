"""The console's parameter forms, generated from the real operations' JSON schemas: each
property gets the input its type calls for, and what a browser posts back becomes params the
operation's own model accepts (or a problem under the field)."""

from __future__ import annotations

from starlette.datastructures import FormData

from docmill.console.forms import fields_of, params_from_form
from docmill.engines.registry import get_operation, operations


def schema(name: str) -> dict:
    return get_operation(name).params.model_json_schema()


def test_every_operation_gets_a_form_whose_defaults_validate():
    for name, operation in operations().items():
        model_schema = operation.params.model_json_schema()
        fields = fields_of(model_schema)
        assert [f.name for f in fields] == list(model_schema.get("properties", {})), name
        # An untouched form (checkboxes at their defaults) gives the operation's defaults.
        posted = FormData([(f"{f.input_name}.present", "1") for f in fields
                           if f.kind == "checkbox"] + [(f.input_name, "on") for f in fields
                                                       if f.kind == "checkbox" and f.default])
        params, problems = params_from_form(model_schema, posted)
        assert problems == {}, name
        try:
            defaults = operation.params.model_validate({})
        except ValueError:
            continue  # the operation needs something said (a password, a schema...)
        assert operation.params.model_validate(params) == defaults, name


def test_inputs_follow_the_schema_types():
    kinds = {f.name: f for f in fields_of(schema("pdf.to-image"))}
    assert kinds["format"].kind == "select" and "png" in kinds["format"].choices
    assert kinds["dpi"].kind == "number" and kinds["dpi"].integer
    assert (kinds["dpi"].minimum, kinds["dpi"].maximum) == (10, 1200)
    assert kinds["scale"].kind == "number" and not kinds["scale"].integer  # optional number
    assert kinds["pages"].kind == "text"  # optional string
    assert kinds["keep_proportions"].kind == "checkbox"
    assert fields_of(schema("extract.fields"))[0].kind == "json"  # the schema: an object


def test_posted_values_become_typed_params_or_problems():
    posted = FormData([("p.format", "jpeg"), ("p.dpi", "72"), ("p.pages", " 1-2 "),
                       ("p.scale", ""), ("p.keep_proportions.present", "1")])
    params, problems = params_from_form(schema("pdf.to-image"), posted)
    assert problems == {}
    assert params == {"format": "jpeg", "dpi": 72, "pages": "1-2", "keep_proportions": False}
    get_operation("pdf.to-image").params.model_validate(params)
    bad = FormData([("p.format", "gif"), ("p.dpi", "7.5"), ("p.scale", "x")])
    _, problems = params_from_form(schema("pdf.to-image"), bad)
    assert set(problems) == {"format", "dpi", "scale"}
    _, problems = params_from_form(schema("extract.fields"), FormData([("p.schema", "{")]))
    assert problems["schema"].startswith("not valid JSON")
