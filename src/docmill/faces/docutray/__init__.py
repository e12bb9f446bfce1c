"""The Docutray face: document types, conversion (extraction) and identification under
`/api/` (see ../shared/specs/docutray.md and docs/docutray.md)."""
