"""The invoice documents the HTML benchmarks share: shared/data/html/sparksuite-invoice.html
with its remote logo swapped for a data: URI (nothing leaves the machine), as it is (1 page)
and with its item rows repeated until WeasyPrint makes 20 pages of it; and `summary`, how both
benchmarks report a list of timings."""

from __future__ import annotations

import base64
import io
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from server import DATA

LOGO = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5d8f4d6"
    "0000000049454e44ae426082")).decode()


def invoice(rows: int = 0) -> str:
    """The invoice; with `rows`, that many extra item rows before the total."""
    html = (DATA / "html" / "sparksuite-invoice.html").read_text()
    html = re.sub(r'src="https?://[^"]+"', f'src="data:image/png;base64,{LOGO}"', html)
    if rows:
        extra = "".join(f'<tr class="item"><td>Consulting, day {i + 1}</td>'
                        f"<td>${(i % 17 + 3) * 25}.00</td></tr>\n" for i in range(rows))
        html = html.replace('<tr class="item last">', extra + '<tr class="item last">', 1)
    return html


def pages_of(pdf: bytes) -> int:
    import pypdfium2 as pdfium

    return len(pdfium.PdfDocument(io.BytesIO(pdf)))


def weasy(html: str) -> bytes:
    import weasyprint

    return weasyprint.HTML(string=html).write_pdf()


def twenty_pages() -> str:
    """The smallest row count that makes the invoice 20 pages (bisection)."""
    low, high = 10, 2000
    while low < high:
        mid = (low + high) // 2
        if pages_of(weasy(invoice(mid))) >= 20:
            high = mid
        else:
            low = mid + 1
    return invoice(low)


def summary(samples: list[float]) -> dict[str, float]:
    """Count, median, mean, min and max of timings in seconds."""
    ordered = sorted(samples)
    return {"n": len(ordered), "median_s": statistics.median(ordered),
            "mean_s": statistics.fmean(ordered), "min_s": ordered[0], "max_s": ordered[-1]}
