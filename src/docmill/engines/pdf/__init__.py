"""The PDF family: `pdf.*` operations.

`render.py` renders pages and reads their text (PDFium), merges and splits (pypdf);
`tools.py` edits a document's structure with pikepdf (rotate, compress, protect, watermark,
PDF/A, extract and delete pages, metadata).
"""
