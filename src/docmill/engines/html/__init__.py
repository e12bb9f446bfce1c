"""The HTML family: `html.*` and `markdown.to-pdf`.

`to_pdf.py` renders HTML and Markdown with WeasyPrint (or hands them to `chromium.py`,
headless Chromium for documents whose scripts must run); `printing.py` adds the option set
of hosted HTML-to-PDF services (`html.print-pdf`, `html.print-sheet`; parameters in
`print_params.py`, iframes laid out by `iframes.py`, documents refused early by
`checks.py`); `spreadsheet.py` turns tables into XLSX/XLS workbooks. Every fetch, of a
resource or of a document, goes through `fetching.py` and the SSRF guard.
"""
