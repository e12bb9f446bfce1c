"""The HTML family: `html.*` and `markdown.to-pdf`.

`to_pdf.py` renders HTML and Markdown with WeasyPrint (or hands them to `chromium.py`,
headless Chromium for documents whose scripts must run); `printing.py` adds the option set
of hosted HTML-to-PDF services (`html.print-pdf`, `html.print-sheet`); `spreadsheet.py`
turns tables into XLSX/XLS workbooks.
"""
