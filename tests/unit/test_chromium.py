"""The Chromium HTML engine called directly, with the real browser (Debian's chromium): scripts
run only when asked, every request the page makes (elements, CSS, fetch(), XMLHttpRequest,
WebSocket, navigation) goes through the SSRF guard or is refused and listed, a script that
never ends times out cleanly, a browser that hangs or dies is replaced, and the next job
works. One browser serves the whole module, as in a worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from pydantic import ValidationError

from docmill.engines.base import EngineInput
from docmill.engines.html import chromium
from docmill.engines.html.to_pdf import HtmlEngine, HtmlToPdfParams
from docmill.errors import Timeout
from docmill.settings import get_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from doctext import pdf_pages_text
from local_http import FILE_ATTACKS, Recorder

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201e2b2a1a50000000049454e44ae426082")
JS_ATTACKS = """<!DOCTYPE html><html><body><h1 id="h">static</h1><p id="out">results:</p>
<script>
const out = document.getElementById('out');
document.getElementById('h').textContent = 'JS built this';
const say = (t) => out.append(' ' + t);
fetch('file:///etc/passwd').then(r => r.text()).then(say, () => say('fetch_file_refused'));
fetch('{base}/secret').then(r => r.text()).then(say, () => say('fetch_loopback_refused'));
fetch('http://169.254.169.254/latest/meta-data/').then(r => r.text())
  .then(say, () => say('fetch_metadata_refused'));
try {{ const x = new XMLHttpRequest(); x.open('GET', 'file:///etc/passwd', false); x.send();
  say(x.responseText) }} catch (e) {{ say('xhr_file_refused') }}
try {{ const x = new XMLHttpRequest(); x.open('GET', '{base}/secret', false); x.send();
  say(x.responseText) }} catch (e) {{ say('xhr_loopback_refused') }}
try {{ new WebSocket('ws://127.0.0.1:{port}/ws') }} catch (e) {{}}
const i = document.createElement('iframe'); i.src = 'file:///etc/passwd';
document.body.append(i);
setTimeout(() => {{ location.href = 'file:///etc/passwd' }}, 10);
</script></body></html>"""


@pytest.fixture(scope="module")
def engine():
    html = HtmlEngine()
    html.start()
    yield html
    html.stop()


@pytest.fixture
def recorder():
    server = Recorder()
    server.routes["/secret"] = (200, {"Content-Type": "text/plain"}, b"LOOPBACK-SECRET")
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings_env(monkeypatch):
    def apply(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(f"DOCMILL_{key.upper()}", value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


def render(engine, tmp_path, html, **params):
    source = tmp_path / "doc.html"
    source.write_text(html, encoding="utf-8")
    return engine.run("html.to-pdf", [EngineInput(source, "doc.html", "text/html")],
                      HtmlToPdfParams(engine="chromium", **params), tmp_path,
                      lambda p, m: None)


def text_of(result) -> str:
    return "\n".join(pdf_pages_text(result.outputs[0].path))


def test_scripts_run_only_when_asked(engine, tmp_path):
    html = ("<!DOCTYPE html><title>T</title><p id=x>static</p>"
            "<script>document.getElementById('x').textContent = 'JSRAN ' + (6 * 7)</script>")
    off = render(engine, tmp_path, html)
    assert "static" in text_of(off) and "JSRAN" not in text_of(off)
    on = render(engine, tmp_path, html, javascript=True)
    assert "JSRAN 42" in text_of(on) and on.data["engine"] == "chromium" and on.pages == 1
    # javascript alone picks Chromium; asking WeasyPrint to run scripts is refused
    assert HtmlToPdfParams(javascript=True).engine == "chromium"
    with pytest.raises(ValidationError):
        HtmlToPdfParams(engine="weasyprint", javascript=True)
    with pytest.raises(ValidationError):
        HtmlToPdfParams(engine="chromium", pdf_format="pdfa-2b")


def test_page_size_margin_landscape_background(engine, tmp_path):
    html = "<body style='background: rgb(0, 0, 200)'><p>sized</p></body>"
    a5 = render(engine, tmp_path, html, page_size="A5", margin="1cm")
    width, height = pdfium.PdfDocument(a5.outputs[0].path)[0].get_size()
    assert (round(width), round(height)) == (420, 595)  # A5 in points
    wide = render(engine, tmp_path, html, landscape=True, print_background=False)
    width, height = pdfium.PdfDocument(wide.outputs[0].path)[0].get_size()
    assert width > height


def test_hostile_html_renders_without_reading_anything(engine, tmp_path, recorder):
    port = recorder.server_address[1]
    attacks = FILE_ATTACKS.format(base=recorder.base, port=port)
    scripted = JS_ATTACKS.format(base=recorder.base, port=port)
    results = []
    for html, javascript in ((attacks, False), (attacks, True), (scripted, True)):
        result = render(engine, tmp_path, html, javascript=javascript)
        data = result.outputs[0].path.read_bytes()
        text = text_of(result)
        results.append((result, text))
        assert recorder.requests == []  # the loopback server heard nothing
        assert "root:" not in text and b"root:x:0:0" not in data
        assert "LOOPBACK-SECRET" not in text
        refused = set(result.data["resources_refused"])
        assert "file:///etc/passwd" in refused
        assert result.data["resources_loaded"] == []
        for url in refused:  # relative ones are named as written
            assert any(url.removeprefix(chromium.NO_BASE) in w for w in result.warnings), url
    # the static attacks: every element kind, CSS url() and @import
    (static, static_text), _, (result, text) = results
    refused = set(static.data["resources_refused"])
    for url in ("file:///etc/passwd", "file:///etc/hostname", f"{recorder.base}/sheet.css",
                f"{recorder.base}/imported.css", f"{recorder.base}/pixel.png",
                "http://169.254.169.254/latest/meta-data/",
                "http://169.254.169.254/latest/meta-data/iam",
                f"http://localhost:{port}/name.png", f"http://[::1]:{port}/v6.png"):
        assert url in refused, url
    assert "Rendered without them" in static_text and "end of document" in static_text
    # the scripted ones: fetch, XHR, WebSocket, iframe, navigation
    assert "JS built this" in text
    for outcome in ("fetch_file_refused", "fetch_loopback_refused", "fetch_metadata_refused",
                    "xhr_file_refused", "xhr_loopback_refused"):
        assert outcome in text
    refused = set(result.data["resources_refused"])
    assert f"{recorder.base}/secret" in refused
    assert f"ws://127.0.0.1:{port}/ws" in refused


def test_resources_load_through_the_guard(engine, tmp_path, recorder, settings_env):
    settings_env(ssrf_allow_hosts='["127.0.0.1"]', html_resource_max_bytes="2048")
    recorder.routes["/a/style.css"] = (200, {"Content-Type": "text/css"},
                                       b"@import 'more.css'; p { color: red }")
    recorder.routes["/a/more.css"] = (200, {"Content-Type": "text/css"}, b"h1 { color: red }")
    recorder.routes["/a/logo.png"] = (200, {"Content-Type": "image/png"}, PNG_1PX)
    recorder.routes["/a/huge.png"] = (200, {"Content-Type": "image/png"}, b"\0" * 5000)
    recorder.routes["/a/hop"] = (302, {"Location": "http://169.254.169.254/x.png"}, b"")
    recorder.routes["/a/data.json"] = (200, {"Content-Type": "application/json"},
                                       b'{"total": "FETCHED-TOTAL-99"}')
    html = """<html><head><link rel="stylesheet" href="style.css"></head><body><h1>Title</h1>
        <img src="logo.png"><img src="huge.png"><img src="hop"><p id="t">-</p>
        <script>fetch('data.json').then(r => r.json())
          .then(d => document.getElementById('t').textContent = d.total)</script></body></html>"""
    result = render(engine, tmp_path, html, javascript=True, base_url=f"{recorder.base}/a/")
    assert "FETCHED-TOTAL-99" in text_of(result)
    assert sorted(recorder.requests) == sorted(["/a/style.css", "/a/more.css", "/a/logo.png",
                                                "/a/huge.png", "/a/hop", "/a/data.json"])
    loaded = result.data["resources_loaded"]
    assert f"{recorder.base}/a/logo.png" in loaded and f"{recorder.base}/a/more.css" in loaded
    assert any("huge.png" in w and "larger than 2048" in w for w in result.warnings)
    assert any("hop" in w and "169.254.169.254" in w for w in result.warnings)


def test_endless_script_times_out_and_the_next_job_works(engine, tmp_path):
    with pytest.raises(Timeout, match="did not load within 2 s"):
        render(engine, tmp_path, "<p>x</p><script>while (true) {}</script>", javascript=True,
               page_timeout_s=2)
    assert "after" in text_of(render(engine, tmp_path, "<p>after</p>", javascript=True))


def test_hung_or_dead_browser_is_replaced(engine, tmp_path, settings_env):
    settings_env(chromium_pdf_timeout_s="1.5")
    render(engine, tmp_path, "<p>warm</p>")
    first = chromium._browser.pid
    # the renderer freezes once printing starts: the watchdog kills the browser
    html = "<p>x</p><script>addEventListener('beforeprint', () => { while (true) {} })</script>"
    with pytest.raises(Timeout, match="browser was replaced"):
        render(engine, tmp_path, html, javascript=True, page_timeout_s=3)
    assert "next" in text_of(render(engine, tmp_path, "<p>next</p>"))
    second = chromium._browser.pid
    assert second != first
    # a browser that died between jobs is found dead and relaunched
    os.kill(second, 9)
    assert "again" in text_of(render(engine, tmp_path, "<p>again</p>"))
    assert chromium._browser.pid not in (first, second)


def test_print_pdf_options_under_javascript(tmp_path):
    from docmill.engines.html.print_params import PrintPdfParams
    from docmill.engines.html.printing import HtmlPrintEngine
    from docmill.errors import InvalidInput

    source = tmp_path / "doc.html"
    source.write_text("<style>@page { size: A5; @bottom-center { content: 'Page ' counter(page)"
                      " ' of ' counter(pages) } }</style><p id=x>-</p>"
                      "<iframe srcdoc='<p>FRAMED</p>'></iframe>"
                      "<script>x.textContent = 'WRITTEN BY JS'</script>")
    engine, inputs = HtmlPrintEngine(), [EngineInput(source, "doc.html", "text/html")]
    result = engine.run("html.print-pdf", inputs, PrintPdfParams(
        javascript=True, title="The title", watermark="DRAFT COPY", iframes=False),
        tmp_path, lambda p, m: None)
    text = text_of(result)
    assert "WRITTEN BY JS" in text and "Page 1 of 1" in text and "DRAFT" in text
    assert "FRAMED" not in text
    document = pdfium.PdfDocument(result.outputs[0].path)
    assert document.get_metadata_dict()["Title"] == "The title"
    source.write_text("<img src='file:///etc/passwd'><p>x</p>")
    with pytest.raises(InvalidInput, match="Resource error: refused file:///etc/passwd"):
        engine.run("html.print-pdf", inputs, PrintPdfParams(
            javascript=True, fail_on_resource_errors=True), tmp_path, lambda p, m: None)
    with pytest.raises(ValidationError):
        PrintPdfParams(javascript=True, pdf_variant="pdfa-2b")


def test_no_browser_outlives_its_worker(tmp_path):
    """A worker killed mid-life (a job timeout kills the child) takes its browser along."""
    import subprocess
    import time

    script = ("import sys; from pathlib import Path; from docmill.engines.html import chromium\n"
              "chromium.render_pdf(chromium.ChromiumJob(html='<p>x</p>'), Path(sys.argv[1]),"
              " lambda p, m: None)\n"
              "print(chromium._browser.pid, flush=True); sys.stdin.read()\n")
    worker = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "x.pdf")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid = int(worker.stdout.readline())
    assert chromium._process_alive(pid)
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 10
    while chromium._process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not chromium._process_alive(pid)
