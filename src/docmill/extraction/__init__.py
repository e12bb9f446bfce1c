"""Structured extraction and document identification, offline on the CPU.

`extractor.extract(document, schema)` fills a JSON Schema from a read `Document` (labels,
value formats and positions; arrays of objects from table-like rows); `identifier.identify`
ranks candidate document types; `builtin_types.builtin_types()` are the public types Docmill
ships; `llm.py` is the optional OpenAI-compatible backend. The engines in
`engines/extract/fields.py` and `engines/extract/identify.py` wrap these as job operations.
"""
