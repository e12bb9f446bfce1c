"""The HTML, Markdown and spreadsheet engines called directly: the corpus rendered with its
text checked, the SSRF guard on every resource WeasyPrint asks for (a local HTTP server must
receive nothing), base_url resolution through an allow-listed host, resource caps, page
parameters, and HTML tables read back from the XLSX with openpyxl."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import lxml.html
import openpyxl
import pypdfium2 as pdfium
import pytest
from pydantic import ValidationError

from docmill.engines.base import EngineInput
from docmill.engines.html.spreadsheet import HtmlToSheetParams, SpreadsheetEngine, typed_value
from docmill.engines.html.to_pdf import HtmlEngine, HtmlToPdfParams, MarkdownToPdfParams
from docmill.errors import InvalidInput
from docmill.settings import get_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from doctext import coverage, pdf_pages_text
from local_http import FILE_ATTACKS, Recorder
from server import DATA

HTML_DIR = DATA / "html"
CORPUS = sorted(HTML_DIR.rglob("*.html"))
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201e2b2a1a50000000049454e44ae426082")


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def html_engine():
    engine = HtmlEngine()
    engine.start()
    return engine


def render(engine, tmp_path, html, params=None, operation="html.to-pdf", name="doc.html"):
    source = tmp_path / name
    if isinstance(html, bytes):
        source.write_bytes(html)
    else:
        source.write_text(html, encoding="utf-8")
    content_type = "text/markdown" if operation == "markdown.to-pdf" else "text/html"
    params = params or (MarkdownToPdfParams() if operation == "markdown.to-pdf"
                        else HtmlToPdfParams())
    progress = []
    result = engine.run(operation, [EngineInput(source, name, content_type)], params, tmp_path,
                        lambda p, m: progress.append((p, m)))
    result.progress = progress
    return result


def visible_text(path: Path) -> str:
    root = lxml.html.document_fromstring(path.read_bytes())
    for bad in root.xpath("//script|//style|//head"):
        bad.getparent().remove(bad)
    return root.text_content()


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_renders_with_its_text(html_engine, tmp_path, path):
    result = render(html_engine, tmp_path, path.read_bytes())
    pages = pdf_pages_text(result.outputs[0].path)
    assert len(pages) == result.pages >= 1
    assert coverage(visible_text(path), "\n".join(pages)) >= 0.85
    assert [m.split()[0] for _, m in result.progress][:3] == ["loading", "rendering", "writing"]


def test_paged_media_features_survive(html_engine, tmp_path):
    landscape = render(html_engine, tmp_path, (HTML_DIR / "pagedjs-landscape.html").read_bytes())
    doc = pdfium.PdfDocument(landscape.outputs[0].path)
    sizes = [doc[i].get_size() for i in range(len(doc))]
    assert any(w > h for w, h in sizes)
    table = render(html_engine, tmp_path, (HTML_DIR / "pagedjs-long-table.html").read_bytes())
    assert table.pages > 1




def test_local_files_private_addresses_and_metadata_are_refused(html_engine, tmp_path,
                                                                 recorder):
    html = FILE_ATTACKS.format(base=recorder.base, port=recorder.server_address[1])
    result = render(html_engine, tmp_path, html)
    assert recorder.requests == []  # nothing reached the local server
    pdf = result.outputs[0].path
    text = "\n".join(pdf_pages_text(pdf))
    assert "Rendered without them" in text and "end of document" in text
    assert "root:" not in text
    doc = pdfium.PdfDocument(pdf)
    assert doc.count_attachments() == 0
    assert b"root:x:0:0" not in pdf.read_bytes()
    refused = set(result.data["resources_refused"])
    for url in ("file:///etc/passwd", "file:///etc/hostname", "file:///etc/shadow",
                f"{recorder.base}/sheet.css", f"{recorder.base}/imported.css",
                f"{recorder.base}/pixel.png", "http://169.254.169.254/latest/meta-data/",
                "http://169.254.169.254/latest/meta-data/iam"):
        assert url in refused, url
        assert any(url in w for w in result.warnings), url
    assert result.data["resources_loaded"] == []
    assert any("file:///usr/share/fonts" in w for w in result.warnings)
    assert any("/etc/passwd" in w and "relative" in w.lower() for w in result.warnings)


def test_base_url_resolves_relative_resources_through_the_guard(html_engine, tmp_path,
                                                                recorder, monkeypatch):
    monkeypatch.setenv("DOCMILL_SSRF_ALLOW_HOSTS", '["127.0.0.1"]')
    monkeypatch.setenv("DOCMILL_HTML_RESOURCE_MAX_BYTES", "2048")
    get_settings.cache_clear()
    try:
        recorder.routes["/assets/style.css"] = (
            200, {"Content-Type": "text/css"}, b"@import 'more.css'; p.big { font-size: 30pt }")
        recorder.routes["/assets/more.css"] = (200, {"Content-Type": "text/css"},
                                               b"h1 { color: rgb(200, 0, 0) }")
        recorder.routes["/assets/logo.png"] = (200, {"Content-Type": "image/png"}, PNG_1PX)
        recorder.routes["/assets/huge.png"] = (200, {"Content-Type": "image/png"},
                                               b"\0" * 5000)
        recorder.routes["/assets/hop"] = (302, {"Location": "http://169.254.169.254/x.png"},
                                          b"")
        html = """<html><head><link rel="stylesheet" href="style.css"></head><body>
            <h1>Title</h1><p class="big">Big text</p>
            <img src="logo.png" style="width: 5cm"><img src="huge.png"><img src="hop">
            <img src="/etc/passwd"></body></html>"""
        result = render(html_engine, tmp_path, html,
                        HtmlToPdfParams(base_url=f"{recorder.base}/assets/"))
        assert sorted(recorder.requests) == sorted(
            ["/assets/style.css", "/assets/more.css", "/assets/logo.png", "/assets/huge.png",
             "/assets/hop", "/etc/passwd"])
        loaded = result.data["resources_loaded"]
        assert f"{recorder.base}/assets/logo.png" in loaded
        assert f"{recorder.base}/assets/more.css" in loaded
        assert any("huge.png" in w and "larger than 2048" in w for w in result.warnings)
        assert any("hop" in w and "169.254.169.254" in w for w in result.warnings)
        doc = pdfium.PdfDocument(result.outputs[0].path)
        images = [o for o in doc[0].get_objects() if o.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE]
        assert len(images) == 1  # the logo; the huge and redirected ones are left out
    finally:
        get_settings.cache_clear()


def test_resource_count_is_capped(html_engine, tmp_path, recorder, monkeypatch):
    monkeypatch.setenv("DOCMILL_SSRF_ALLOW_HOSTS", '["127.0.0.1"]')
    monkeypatch.setenv("DOCMILL_HTML_MAX_RESOURCES", "3")
    get_settings.cache_clear()
    try:
        for i in range(6):
            recorder.routes[f"/{i}.png"] = (200, {"Content-Type": "image/png"}, PNG_1PX)
        html = "".join(f'<img src="{recorder.base}/{i}.png">' for i in range(6))
        result = render(html_engine, tmp_path, html)
        assert len(recorder.requests) == 3
        assert sum("more than 3 resources" in w for w in result.warnings) == 3
    finally:
        get_settings.cache_clear()


def test_page_size_margin_and_media(html_engine, tmp_path):
    html = ("<style>@media screen { .only-screen { display: block } .only-print { display: none } }"
            "@media print { .only-screen { display: none } }</style>"
            "<p class='only-screen'>SCREEN</p><p class='only-print'>PRINT</p>")
    result = render(html_engine, tmp_path, html,
                    HtmlToPdfParams(page_size="A5 landscape", margin="1cm", media="screen"))
    doc = pdfium.PdfDocument(result.outputs[0].path)
    width, height = doc[0].get_size()
    assert abs(width - 595.3) < 1 and abs(height - 419.5) < 1
    text = pdf_pages_text(result.outputs[0].path)[0]
    assert "SCREEN" in text and "PRINT" not in text
    printed = render(html_engine, tmp_path, html, HtmlToPdfParams())
    assert "PRINT" in pdf_pages_text(printed.outputs[0].path)[0]


@pytest.mark.parametrize("field,value", [
    ("page_size", "A4; } body { background: url(file:///etc/passwd) } @page {"),
    ("margin", "1cm; background: url(http://169.254.169.254/)"),
    ("base_url", "file:///etc/"),
    ("base_url", "relative/path/"),
])
def test_unsafe_parameters_are_rejected(field, value):
    with pytest.raises(ValidationError):
        HtmlToPdfParams(**{field: value})


def test_pdfa_variant(html_engine, tmp_path):
    result = render(html_engine, tmp_path, "<p>archive</p>", HtmlToPdfParams(pdf_format="pdfa-3b"))
    import pypdf

    xmp = pypdf.PdfReader(result.outputs[0].path).trailer["/Root"]["/Metadata"].get_object()
    assert b"pdfaid" in xmp.get_data()


def test_markdown_to_pdf(html_engine, tmp_path):
    markdown = ("# Quarterly report\n\nSome *emphasis* and `code`.\n\n"
                "| Region | Amount |\n|---|---|\n| North | 1,234 |\n\n"
                "```\nfenced block\n```\n\n![x](file:///etc/passwd)\n")
    result = render(html_engine, tmp_path, markdown, operation="markdown.to-pdf",
                    name="report.md")
    text = pdf_pages_text(result.outputs[0].path)[0]
    for expected in ("Quarterly report", "emphasis", "Region", "North", "1,234", "fenced block"):
        assert expected in text
    assert "file:///etc/passwd" in result.data["resources_refused"]


def test_broken_html_still_renders(html_engine, tmp_path):
    result = render(html_engine, tmp_path, b"<html><body><p>unclosed <b>bold <table><tr><td>"
                    b"cell\xff\xfe bytes</div></span>")
    assert "cell" in pdf_pages_text(result.outputs[0].path)[0]


# --- HTML tables to spreadsheets ---------------------------------------------------------

TABLES = """<html><body>
<table id="sales"><caption>Q1 Sales: EU/US</caption>
<thead><tr><th>Region</th><th>Amount</th><th>Share</th><th>Date</th><th>Code</th></tr></thead>
<tbody>
<tr><td>North</td><td>1,234.50</td><td>12.5%</td><td>2024-01-31</td><td>007</td></tr>
<tr><td rowspan="2">South<br>coast</td><td>$99</td><td>-3</td><td>2024-02-01 10:30</td>
<td>(12.00)</td></tr>
<tr><td colspan="2">merged</td><td>x</td></tr>
</tbody></table>
<table><tr><td>1</td><td><table><tr><td>nested</td></tr></table></td></tr></table>
<table id="totals"><tr><th>Total</th><td>42</td></tr></table>
</body></html>"""


def test_html_tables_to_xlsx(tmp_path):
    source = tmp_path / "tables.html"
    source.write_text(TABLES)
    result = SpreadsheetEngine().run("html.to-xlsx",
                                     [EngineInput(source, "tables.html", "text/html")],
                                     HtmlToSheetParams(), tmp_path, lambda *_: None)
    workbook = openpyxl.load_workbook(result.outputs[0].path)
    assert workbook.sheetnames == ["Q1 Sales_ EU_US", "Table2", "totals"]
    sales = workbook["Q1 Sales_ EU_US"]
    assert [c.value for c in sales[1]] == ["Region", "Amount", "Share", "Date", "Code"]
    assert all(c.font.b for c in sales[1])
    assert not sales["A2"].font.b
    assert [c.value for c in sales[2]] == ["North", 1234.5, 0.125,
                                           dt.datetime(2024, 1, 31), "007"]
    assert sales["D2"].is_date and sales["C2"].number_format == "0.00%"
    assert [c.value for c in sales[3]] == ["South\ncoast", 99, -3, dt.datetime(2024, 2, 1, 10, 30),
                                           -12.0]
    assert sales["B4"].value == "merged" and sales["D4"].value == "x"
    assert {str(r) for r in sales.merged_cells.ranges} == {"A3:A4", "B4:C4"}
    assert sales.freeze_panes == "A2"
    assert [c.value for c in workbook["Table2"][1]] == [1, "nested"]
    assert [c.value for c in workbook["totals"][1]] == ["Total", 42]
    assert result.data["sheets"][0] == {"name": "Q1 Sales_ EU_US", "rows": 4, "columns": 5}


def test_html_tables_to_xls_via_libreoffice(tmp_path):
    from docmill.engines.office.formats import ConvertParams
    from docmill.engines.registry import engine_for, get_operation, stop_all

    source = tmp_path / "tables.html"
    source.write_text(TABLES)
    try:
        result = SpreadsheetEngine().run("html.to-xls",
                                         [EngineInput(source, "tables.html", "text/html")],
                                         HtmlToSheetParams(), tmp_path, lambda *_: None)
        xls = result.outputs[0].path
        assert xls.read_bytes()[:4] == b"\xd0\xcf\x11\xe0"
        office = engine_for(get_operation("office.convert"))
        back = office.run("office.convert", [EngineInput(xls, "t.xls", "application/vnd.ms-excel")],
                          ConvertParams(format="xlsx"), tmp_path, lambda *_: None)
        workbook = openpyxl.load_workbook(back.outputs[0].path)
        assert workbook.sheetnames == ["Q1 Sales_ EU_US", "Table2", "totals"]
        row = [c.value for c in workbook["Q1 Sales_ EU_US"][2]]
        assert row[:3] == ["North", 1234.5, 0.125] and row[4] == "007"
    finally:
        stop_all()


def test_no_table_is_invalid_input(tmp_path):
    source = tmp_path / "none.html"
    source.write_text("<p>no tables here</p>")
    with pytest.raises(InvalidInput, match="no <table>"):
        SpreadsheetEngine().run("html.to-xlsx", [EngineInput(source, "none.html", "text/html")],
                                HtmlToSheetParams(), tmp_path, lambda *_: None)


@pytest.mark.parametrize("text,value", [
    ("12", 12), ("-3.5", -3.5), ("1,234", 1234), ("12%", 0.12), ("€5", 5), ("(7)", -7),
    ("007", "007"), ("12345678901234567890", "12345678901234567890"), ("1.2.3", "1.2.3"),
    ("2024-02-30", "2024-02-30"), ("abc", "abc"), ("", None),
])
def test_typed_values(text, value):
    assert typed_value(text)[0] == value
