"""HTML tables to spreadsheets: XLSX written with openpyxl, XLS converted from it by the
worker's warm LibreOffice (the office engine's instance, not a second one).

Each top-level `<table>` becomes a sheet named after its `<caption>`, else its `id`, else
`Table1`, `Table2`... Cell text that reads as a number, a percentage, an amount or an ISO
date becomes a typed cell (leading-zero codes such as `007` stay text); `<th>` cells are
bold; `colspan`/`rowspan` become merged ranges.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from docmill.engines.base import (
    Engine,
    EngineInput,
    EngineOutput,
    EngineResult,
    Operation,
    Params,
    Progress,
    output_stem,
)
from docmill.engines.html.to_pdf import HTML_TYPES, read_text
from docmill.errors import InvalidInput

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLS = "application/vnd.ms-excel"
MAX_SPAN = 1000
MAX_CELLS = 2_000_000

_NUMBER = re.compile(r"^(?P<sign>[-+\u2212]?)(?P<cur>[$€£¥])?\s?(?P<num>\d{1,3}(?:,\d{3})+|\d+)"
                     r"(?P<frac>\.\d+)?\s?(?P<pct>%)?$")
_PAREN_NEG = re.compile(r"^\((?P<inner>[^()]+)\)$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$")
CURRENCY_FORMATS = {"$": '"$"#,##0.00', "€": '#,##0.00 "€"', "£": '"£"#,##0.00',
                    "¥": '"¥"#,##0'}


class HtmlToSheetParams(Params):
    detect_types: bool = Field(True, description="Turn numbers, percentages, amounts and "
                               "ISO dates into typed cells; false keeps every cell as text.")
    header_bold: bool = Field(True, description="Make <th> cells bold.")


def typed_value(text: str) -> tuple[Any, str | None]:
    """(value, number format) for a cell's text; text stays text when in doubt."""
    raw = text.strip()
    if not raw:
        return None, None
    negative = False
    paren = _PAREN_NEG.match(raw)
    if paren:  # accounting style (1,234.00)
        raw, negative = paren.group("inner").strip(), True
    match = _NUMBER.match(raw)
    if match:
        digits = match.group("num").replace(",", "")
        if len(digits) > 1 and digits.startswith("0") and not match.group("frac"):
            return text.strip(), None  # a code such as 007 or a zip code
        if len(digits) > 15:
            return text.strip(), None  # past float precision: keep the digits exact
        number: float | int
        if match.group("frac"):
            number = float(digits + match.group("frac"))
        else:
            number = int(digits)
        if match.group("sign") in ("-", "\u2212"):
            negative = not negative
        if negative:
            number = -number
        if match.group("pct"):
            return number / 100, "0.00%" if match.group("frac") else "0%"
        if match.group("cur"):
            return number, CURRENCY_FORMATS[match.group("cur")]
        if "," in match.group("num"):
            return number, "#,##0.00" if match.group("frac") else "#,##0"
        return number, None
    if paren:
        return text.strip(), None
    match = _DATETIME.match(raw)
    if match:
        try:
            year, month, day, hour, minute, second = (int(p) for p in match.groups(default="0"))
            when = dt.datetime(year, month, day, hour, minute, second)
            return when, "yyyy-mm-dd hh:mm:ss" if match.group(6) else \
                "yyyy-mm-dd hh:mm"
        except ValueError:
            return text.strip(), None
    match = _DATE.match(raw)
    if match:
        try:
            return dt.date(*(int(p) for p in match.groups())), "yyyy-mm-dd"
        except ValueError:
            return text.strip(), None
    return text.strip(), None


_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def sheet_title(wanted: str, taken: set[str], index: int) -> str:
    title = _BAD_SHEET_CHARS.sub("_", " ".join(wanted.split())).strip("'")[:31] or \
        f"Table{index}"
    base, n = title, 2
    while title.lower() in taken:
        suffix = f" ({n})"
        title = base[:31 - len(suffix)] + suffix
        n += 1
    taken.add(title.lower())
    return title


def _cell_text(cell: Any) -> str:
    for br in cell.iter("br"):
        br.tail = "\n" + (br.tail or "")
    text = cell.text_content()
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def _rows(table: Any) -> list[Any]:
    """The table's own rows in document order (not those of nested tables)."""
    rows = []
    for child in table:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == "tr":
            rows.append(child)
        elif tag in ("thead", "tbody", "tfoot"):
            rows.extend(r for r in child if isinstance(r.tag, str) and r.tag == "tr")
    return rows


def _span(cell: Any, name: str) -> int:
    try:
        return max(1, min(MAX_SPAN, int(cell.get(name, "1").strip() or 1)))
    except ValueError:
        return 1


def html_tables_to_xlsx(html: str, target: Path, params: HtmlToSheetParams,
                        progress: Progress) -> dict[str, Any]:
    import lxml.html
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    try:
        root = lxml.html.document_fromstring(html)
    except Exception as exc:  # lxml raises ParserError for empty or unparsable input
        raise InvalidInput(f"cannot parse the HTML: {exc}") from exc
    tables = [t for t in root.iter("table") if not any(a.tag == "table"
                                                       for a in t.iterancestors())]
    if not tables:
        raise InvalidInput("the HTML has no <table> to convert")
    workbook = Workbook()
    if workbook.active is not None:  # a new workbook's empty first sheet
        workbook.remove(workbook.active)
    taken: set[str] = set()
    sheets = []
    cells = 0
    bold = Font(bold=True)
    for index, table in enumerate(tables, start=1):
        caption = table.find("caption")
        wanted = (_cell_text(caption) if caption is not None else "") or table.get("id", "")
        sheet = workbook.create_sheet(sheet_title(wanted, taken, index))
        occupied: set[tuple[int, int]] = set()
        widths: dict[int, int] = {}
        row_count = 0
        for r, row in enumerate(_rows(table), start=1):
            c = 1
            for cell in row:
                if not isinstance(cell.tag, str) or cell.tag not in ("td", "th"):
                    continue
                while (r, c) in occupied:
                    c += 1
                colspan, rowspan = _span(cell, "colspan"), _span(cell, "rowspan")
                text = _cell_text(cell)
                value, number_format = typed_value(text) if params.detect_types else (
                    text or None, None)
                target_cell = sheet.cell(row=r, column=c, value=value)
                if number_format:
                    target_cell.number_format = number_format
                if cell.tag == "th" and params.header_bold:
                    target_cell.font = bold
                if "\n" in text:
                    target_cell.alignment = Alignment(wrap_text=True, vertical="top")
                for dr in range(rowspan):
                    for dc in range(colspan):
                        occupied.add((r + dr, c + dc))
                if colspan > 1 or rowspan > 1:
                    sheet.merge_cells(start_row=r, start_column=c, end_row=r + rowspan - 1,
                                      end_column=c + colspan - 1)
                if colspan == 1:
                    longest = max((len(line) for line in text.split("\n")), default=0)
                    widths[c] = max(widths.get(c, 0), longest)
                cells += colspan * rowspan
                if cells > MAX_CELLS:
                    raise InvalidInput(f"the tables have more than {MAX_CELLS} cells")
                c += colspan
            row_count = r
        for column, width in widths.items():
            sheet.column_dimensions[get_column_letter(column)].width = min(60, max(8, width + 2))
        rows = _rows(table)
        first = [x for x in rows[0] if isinstance(x.tag, str) and x.tag in ("td", "th")] \
            if rows else []
        if first and all(x.tag == "th" for x in first):
            sheet.freeze_panes = "A2"  # a header row stays visible
        sheets.append({"name": sheet.title, "rows": row_count, "columns": sheet.max_column})
        progress(10 + 60 * index / len(tables), f"converted table {index} of {len(tables)}")
    workbook.save(target)
    return {"sheets": sheets}


class SpreadsheetEngine(Engine):
    name = "spreadsheet"
    operations = (
        Operation("html.to-xlsx", "Turn each <table> of an HTML document into a sheet of an "
                  "XLSX workbook, with typed numbers and dates and bold headers.",
                  HtmlToSheetParams, HTML_TYPES, ("xlsx",), engine="spreadsheet"),
        Operation("html.to-xls", "The same as html.to-xlsx, saved as a legacy Excel 97 XLS "
                  "workbook (through LibreOffice).",
                  HtmlToSheetParams, HTML_TYPES, ("xls",), engine="spreadsheet"),
    )

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        assert isinstance(params, HtmlToSheetParams)
        source = inputs[0]
        stem = output_stem(source.name)
        progress(5, "parsing html")
        xlsx = workdir / f"{stem}.xlsx"
        data = html_tables_to_xlsx(read_text(source.path), xlsx, params, progress)
        if operation == "html.to-xlsx":
            progress(98, "wrote xlsx")
            return EngineResult(outputs=[EngineOutput(xlsx, XLSX)], data=data,
                                pages=len(data["sheets"]))
        xls = workdir / f"{stem}.xls"
        to_xls(xlsx, xls, progress)
        progress(98, "wrote xls")
        return EngineResult(outputs=[EngineOutput(xls, XLS)], data=data,
                            pages=len(data["sheets"]))


def to_xls(xlsx: Path, xls: Path, progress: Progress) -> None:
    """XLSX -> XLS on the worker's one LibreOffice (started if this is its first office
    job)."""
    from docmill.engines.office.converter import shared_converter
    from docmill.engines.office.formats import FORMATS

    fmt = FORMATS["xls"]

    def scaled(percent: float, message: str) -> None:
        progress(70 + percent * 0.25, message)

    shared_converter().convert(
        xlsx, xls, scaled, export_filter=fmt.filter, family_filters=None, filter_data={},
        filter_options="", password=None, import_filter="Calc MS Excel 2007 XML",
        import_options="")

