"""The OCR family: `ocr.*` and `layout.analyze`, over the document model (docmill/documents.py).

`pipeline.py` reads a document (the PDF text layer first, `textlayer.py`; OCR where a page has
none, `backends.py`: Tesseract or RapidOCR, orientation), `page_layout.py` finds its blocks,
tables, headers and footers, `searchable_pdf.py` writes an invisible text layer.
"""
