"""HTML to PDF in headless Chromium: the engine for documents whose scripts must run.

WeasyPrint (`to_pdf.py`) stays the default; `html.to-pdf` with `engine: chromium` (or
`javascript: true`) and `html.print-pdf` with `javascript: true` come here. Chromium is
Debian's `chromium` package driven over CDP by Playwright (`playwright` wheel, its own
driver; the browser download of `playwright install` is never used).

One browser per worker process (`ChromiumBrowser`), launched on the first Chromium job and
kept warm, supervised by engines/supervisor.py. Before each job it is checked (still
connected, process alive) and relaunched if not; after `chromium_max_renders` documents it
is retired between jobs. The supervisor's watchdog kills the browser's process group when a
job runs past `chromium_page_timeout_s + chromium_pdf_timeout_s`: a hung renderer or a
frozen browser fails that job with `timeout`, and the next job gets a new browser; a browser
that crashes under a document fails that job (it is not retried). When the worker dies,
Playwright's driver sees its stdin close and takes the browser down with it.

Every job gets a fresh browser context (no cookies, storage or cache shared between jobs),
JavaScript off unless asked, service workers blocked, downloads refused. The document is
served by request interception as the response to a navigation to `base_url` (or to a
reserved `.invalid` URL), so relative references resolve as the client named them. Every
request the page makes goes through `_RequestGuard`: http(s) is fetched *by Docmill* through
`security.ssrf.open_url` (host resolved and checked, the checked address connected to,
redirects checked hop by hop, size and time capped) and handed to the page with
`route.fulfill`, so Chromium itself never opens a connection and DNS rebinding has nothing to
race. `file:` and other local schemes are refused by Chromium for an http page (we list them
from its failure events), main-frame navigations away from the document are refused, and
WebSockets are closed. As a second wall, Chromium runs with a proxy that cannot resolve and
a host resolver that resolves nothing, so a request that escaped interception would fail.
Every refused or failed resource is a job warning.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from docmill.engines.base import EngineOutput, EngineResult, Progress
from docmill.engines.supervisor import Crashed, ProcessDied, Supervisor, TimedOut, kill_group
from docmill.errors import DocmillError, EngineFailed, Timeout, UnsafeUrl

log = logging.getLogger(__name__)

NO_BASE = "http://no-base-url.invalid/"  # fetching.py's: reserved TLD, refused by name
MAX_WARNINGS = 50
FLAGS = ("--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-breakpad",
         "--disable-features=MediaRouter,OptimizationHints,Translate",
         "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing resolves: the second wall
         "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
         "--webrtc-ip-handling-policy=disable_non_proxied_udp")
DEAD_PROXY = "http://no-network.invalid:9"
# WeasyPrint's default page margin, so a document prints alike in both engines and margin
# boxes (headers, footers, page numbers) have room; the document's own @page rules win.
PAGE_DEFAULTS = "@page { margin: 75px; }\n"
# Response headers not passed on to the page: the body is already decoded and sized, and
# cookies or HSTS from one job must not matter to anything.
DROP_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding",
                          "connection", "keep-alive", "set-cookie", "strict-transport-security",
                          "alt-svc", "public-key-pins"})
FORWARD_HEADERS = ("accept", "accept-language", "content-type", "origin")
_LOCAL_RESOURCE = re.compile(r"Not allowed to load local resource: (\S+)")
_DOCTYPE = re.compile(r"^\ufeff?(?:\s|<!--.*?-->|<\?xml[^>]*\?>)*(?:<!doctype[^>]*>)?",
                      re.IGNORECASE | re.DOTALL)
# DocRaptor's hook: a page that defines docraptorJavaScriptFinished() is printed once it
# returns true.
FINISHED = ("() => typeof window.docraptorJavaScriptFinished !== 'function' "
            "|| !!window.docraptorJavaScriptFinished()")


@dataclass
class ChromiumJob:
    """One document and how to print it; built by to_pdf.py and printing.py from their
    parameters."""

    html: str
    base_url: str | None = None
    javascript: bool = False
    media: str = "print"
    default_css: str = ""  # before the document's own styles: the author wins
    override_css: str = ""  # after them: wins over the author
    landscape: bool = False
    print_background: bool = True
    javascript_delay_ms: int = 0
    page_timeout_s: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    no_network: bool = False
    resource_timeout_s: float | None = None
    frames: bool = True  # load iframes


def with_css(html: str, default_css: str, override_css: str) -> str:
    """The document with `default_css` right after its doctype (so it neither breaks
    standards mode nor beats the author's rules) and `override_css` at its very end."""
    if default_css:
        end = _DOCTYPE.match(html).end()  # type: ignore[union-attr]
        html = f"{html[:end]}<style>{default_css}</style>{html[end:]}"
    if override_css:
        html = f"{html}<style>{override_css}</style>"
    return html


# --- the browser ---------------------------------------------------------------------------


class ChromiumBrowser:
    """The worker process's browser, as its supervisor sees it (`Supervised`): launched
    lazily, checked before each job, killed and replaced when it hangs or dies."""

    def __init__(self) -> None:
        self._owner = 0
        self._playwright: Any = None
        self._browser: Any = None
        self.pid: int | None = None
        self.renders = 0

    @property
    def launched(self) -> bool:
        return self._browser is not None

    @property
    def jobs(self) -> int:
        return self.renders

    def _forget_inherited(self) -> None:
        if self._owner != os.getpid():  # inherited through fork: those objects are not ours
            self._playwright = self._browser = self.pid = None
            self._owner = os.getpid()

    def alive(self) -> bool:
        return (self._browser is not None and self._browser.is_connected()
                and _process_alive(self.pid))

    def healthy(self) -> bool:
        self._forget_inherited()
        return self.alive()

    def get(self) -> Any:
        """The browser, checked (and relaunched) by the supervisor."""
        _supervisor.ensure_ready()
        return self._browser

    def start(self) -> None:
        from playwright.sync_api import Error, sync_playwright

        from docmill.settings import get_settings

        self._forget_inherited()
        settings = get_settings()
        if not Path(settings.chromium_executable).exists():
            raise EngineFailed(f"Chromium is not installed at {settings.chromium_executable} "
                               "(install the chromium package: scripts/setup.sh, or set "
                               "DOCMILL_CHROMIUM_EXECUTABLE; the slim container image has "
                               "no Chromium: use the core one)")
        try:
            if self._playwright is None:
                self._playwright = sync_playwright().start()
            started = time.monotonic()
            self._browser = self._playwright.chromium.launch(
                executable_path=settings.chromium_executable, headless=True,
                chromium_sandbox=settings.chromium_sandbox,
                args=[*FLAGS, *settings.chromium_args], proxy={"server": DEAD_PROXY},
                handle_sigint=False, handle_sigterm=False, handle_sighup=False,
                timeout=settings.chromium_start_timeout_s * 1000)
        except Error as exc:
            log.error("chromium cannot start: %s", exc.message)
            self._stop_playwright()  # the driver itself may be gone: the next try starts afresh
            raise EngineFailed(f"Chromium cannot start: {_first_line(exc)}") from exc
        cdp = self._browser.new_browser_cdp_session()
        processes = cdp.send("SystemInfo.getProcessInfo")["processInfo"]
        cdp.detach()
        self.pid = next((p["id"] for p in processes if p["type"] == "browser"), None)
        self.renders = 0
        log.info("chromium %s started in %.2f s (pid %s)", self._browser.version,
                 time.monotonic() - started, self.pid)

    def kill(self) -> None:
        """SIGKILL the browser (Playwright starts it in its own group) and forget it."""
        self._forget_inherited()
        kill_group(self.pid)
        self.close_browser()

    def stop(self) -> None:
        """Close the browser; the driver stays for the next one."""
        self._forget_inherited()
        self.close_browser()

    def close_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            try:
                browser.close()
            except Exception:
                kill_group(self.pid)
        self.pid = None

    def _stop_playwright(self) -> None:
        playwright, self._playwright = self._playwright, None
        if playwright is not None:
            try:
                playwright.stop()
            except Exception:
                pass


_browser = ChromiumBrowser()
_supervisor = Supervisor(_browser, name="chromium", retry_after_crash=False,
                         on_stop=_browser._stop_playwright)


def shutdown() -> None:
    """Engines' `stop`: close this process's browser and its driver, if it has them."""
    if _browser._owner == os.getpid():
        _supervisor.stop()


atexit.register(shutdown)


# --- requests ------------------------------------------------------------------------------


class _RequestGuard:
    """Decides every request of the page: the document itself, http(s) through the SSRF
    guard, everything else refused; keeps the job's resource warnings."""

    def __init__(self, job: ChromiumJob, html: bytes, deadline: float) -> None:
        from docmill.security.ssrf import policy_from_settings
        from docmill.settings import get_settings

        settings = get_settings()
        self.job, self.html = job, html
        self.policy = policy_from_settings()
        self.timeout = min(settings.html_resource_timeout_s,
                           job.resource_timeout_s or float("inf"))
        self.max_bytes = settings.html_resource_max_bytes
        self.max_resources = settings.html_max_resources
        self.max_redirects = settings.outbound_max_redirects
        self.budget_end = min(time.monotonic() + settings.html_fetch_budget_s, deadline)
        self.served = False
        self.warnings: list[str] = []
        self.refused: list[str] = []
        self.failed: list[str] = []
        self.fetched: list[str] = []
        self.seen: set[str] = set()

    def note(self, url: str, message: str, refused: bool) -> None:
        if url in self.seen:
            return
        self.seen.add(url)
        (self.refused if refused else self.failed).append(url)
        self.warnings.append(message)

    def route(self, route: Any) -> None:
        try:
            self._route(route)
        except Exception as exc:  # never leave a request hanging: the page would wait
            log.exception("chromium: request handler failed")
            self.note(route.request.url, f"could not load {_shown(route.request.url)}: "
                      f"{type(exc).__name__}: {exc}", refused=False)
            try:
                route.abort("failed")
            except Exception:
                pass

    def _route(self, route: Any) -> None:
        request = route.request
        url = request.url
        shown = _shown(url)
        main_frame = request.is_navigation_request() and request.frame.parent_frame is None
        if main_frame and not self.served:
            self.served = True
            route.fulfill(status=200, body=self.html,
                          headers={"Content-Type": "text/html; charset=utf-8"})
            return
        if main_frame:
            self._refuse(route, url, f"refused to navigate away from the document to {shown}")
            return
        if not self.job.frames and request.is_navigation_request():
            self._refuse(route, url, f"skipped the iframe {shown}: iframes are off")
            return
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("data", "blob"):
            route.continue_()
            return
        if url.startswith(NO_BASE):
            relative = url[len(NO_BASE):]
            self._refuse(route, url, f"ignored the relative URL {relative!r}: give base_url "
                         "to load relative resources")
            return
        if scheme not in ("http", "https"):
            self._refuse(route, url, f"refused {shown}: only http, https and data URLs may "
                         "be loaded")
            return
        if self.job.no_network:
            self._refuse(route, url, f"refused {shown}: no_network is set")
            return
        if len(self.fetched) >= self.max_resources:
            self._refuse(route, url, f"skipped {shown}: the document loads more than "
                         f"{self.max_resources} resources")
            return
        remaining = self.budget_end - time.monotonic()
        if remaining <= 0:
            self._refuse(route, url, f"skipped {shown}: the time budget for loading "
                         "resources is spent")
            return
        self.fetched.append(url)
        self._fetch(route, request, url, shown, min(self.timeout, remaining))

    def _refuse(self, route: Any, url: str, message: str) -> None:
        self.note(url, message, refused=True)
        route.abort("blockedbyclient")

    def _fetch(self, route: Any, request: Any, url: str, shown: str, timeout: float) -> None:
        from docmill.security.ssrf import open_url, read_capped

        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_HEADERS}
        headers.update(self.job.headers)
        deadline = time.monotonic() + timeout
        try:
            with open_url(self.policy, url, timeout=timeout, max_redirects=self.max_redirects,
                          method=request.method, headers=headers,
                          content=request.post_data_buffer) as response:
                body = read_capped(response, max_bytes=self.max_bytes, deadline=deadline,
                                   timeout=timeout)
                status = response.status_code
                passed = {k: v for k, v in response.headers.items()
                          if k.lower() not in DROP_HEADERS}
        except UnsafeUrl as exc:
            self._refuse(route, url, f"refused {shown}: {exc.message}")
            return
        except DocmillError as exc:
            self.note(url, f"could not load {shown}: {exc.message}", refused=False)
            route.abort("failed")
            return
        except Exception as exc:  # httpx errors while streaming the body
            self.note(url, f"could not load {shown}: {type(exc).__name__}: {exc}",
                      refused=False)
            route.abort("failed")
            return
        if status >= 400:  # the page sees the real answer; the job notes it
            self.note(url, f"could not load {shown}: HTTP {status}", refused=False)
        route.fulfill(status=status, headers=passed, body=bytes(body))

    def websocket(self, ws: Any) -> None:
        self.note(ws.url, f"refused {_shown(ws.url)}: WebSockets are not opened", refused=True)
        ws.close()

    def request_failed(self, request: Any) -> None:
        """Requests Chromium refused before they reached `route` (file: from an http
        page, other local schemes)."""
        url = request.url
        if urlsplit(url).scheme.lower() not in ("http", "https", "data", "blob", "ws", "wss"):
            self.note(url, f"refused {_shown(url)}: only http, https and data URLs may be "
                      "loaded", refused=True)

    def console(self, message: Any) -> None:
        if message.type == "error":
            match = _LOCAL_RESOURCE.search(message.text)
            if match:
                self.note(match.group(1), f"refused {_shown(match.group(1))}: only http, "
                          "https and data URLs may be loaded", refused=True)


def _shown(url: str) -> str:
    return url if len(url) <= 200 else url[:197] + "..."


# --- rendering -----------------------------------------------------------------------------


def render_pdf(job: ChromiumJob, target: Path, progress: Progress) -> EngineResult:
    """Print `job.html` to `target` in this worker's browser. Raises `Timeout` when the page
    or the browser overruns its budget (the browser is then replaced), `EngineFailed` when
    Chromium crashes or cannot start."""
    from docmill.settings import get_settings

    settings = get_settings()
    page_timeout = min(settings.chromium_page_timeout_s,
                       job.page_timeout_s or float("inf"))
    limit = page_timeout + settings.chromium_pdf_timeout_s
    override_css = job.override_css
    if not job.frames:  # srcdoc and data: frames never reach the router: hide them all
        override_css += "\niframe, frame { display: none !important; }"
    html = with_css(job.html, PAGE_DEFAULTS + job.default_css, override_css).encode("utf-8")
    errors: list[str] = []
    document_url = job.base_url or NO_BASE

    def render() -> _RequestGuard:
        deadline = time.monotonic() + page_timeout
        guard = _RequestGuard(job, html, deadline)
        context = None
        try:
            context = _new_context(job)
            _browser.renders += 1
            context.route("**/*", guard.route)
            context.route_web_socket("**/*", guard.websocket)
            page = context.new_page()
            page.on("requestfailed", guard.request_failed)
            page.on("console", guard.console)
            page.on("pageerror", lambda exc: errors.append(f"JavaScript error: {exc}"))
            page.emulate_media(media="screen" if job.media == "screen" else "print")
            progress(15, "loading the page")
            _load(page, document_url, job, deadline, page_timeout)
            progress(70, "printing to pdf")
            page.pdf(path=str(target), print_background=job.print_background,
                     landscape=job.landscape, prefer_css_page_size=True, tagged=True,
                     outline=True)
        except DocmillError:
            raise
        except Exception as exc:  # Playwright's errors: a closed target, a crashed page...
            if not _browser_alive():
                raise ProcessDied(_first_line(exc)) from exc
            log.exception("chromium failed")
            raise EngineFailed(f"Chromium cannot render the HTML: {_first_line(exc)}") from exc
        finally:
            if context is not None:
                try:
                    context.close()
                except Exception:
                    _browser.close_browser()
        return guard

    progress(5, "starting chromium")
    _supervisor.max_jobs = settings.chromium_max_renders
    try:
        guard = _supervisor.run(render, timeout_s=limit).value
    except TimedOut as exc:
        raise Timeout(f"Chromium did not finish the document within {limit:.0f} s; the "
                      "browser was replaced") from exc.__cause__
    except Crashed as exc:
        raise EngineFailed(f"Chromium crashed while rendering: {exc.cause}") from exc.cause
    pages = _page_count(target)
    warnings = guard.warnings + errors
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [f"... and {len(warnings) - MAX_WARNINGS} more"]
    progress(98, "pdf written")
    return EngineResult(
        outputs=[EngineOutput(target, "application/pdf")],
        data={"pages": pages, "engine": "chromium",
              "resources_loaded": [u for u in guard.fetched if u not in guard.seen],
              "resources_refused": guard.refused, "resources_failed": guard.failed},
        warnings=warnings, pages=pages)


def _load(page: Any, url: str, job: ChromiumJob, deadline: float, page_timeout: float) -> None:
    """Navigate to the document and wait for it: `load`, then with scripts on, network
    idle, DocRaptor's `docraptorJavaScriptFinished()` and the caller's delay."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def left_ms() -> float:
        return max(deadline - time.monotonic(), 0.001) * 1000

    what = "load"
    try:
        page.goto(url, wait_until="load", timeout=left_ms())
        if job.javascript:
            what = "finish its scripts"
            try:
                page.wait_for_load_state("networkidle", timeout=left_ms())
            except PlaywrightTimeout:
                pass  # a page that keeps polling: print what it has, if it still answers
            page.wait_for_function(FINISHED, timeout=left_ms(), polling=100)
            if job.javascript_delay_ms:
                page.wait_for_timeout(min(job.javascript_delay_ms, left_ms()))
    except PlaywrightTimeout as exc:
        raise Timeout(f"the page did not {what} within {page_timeout:g} s (a script that "
                      "never ends, or resources that never arrive?)") from exc


def _process_alive(pid: int | None) -> bool:
    """False once the browser process is gone or a zombie (Playwright notices only when it
    next reads from it)."""
    if not pid:
        return True  # unknown: trust is_connected()
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _new_context(job: ChromiumJob) -> Any:
    """A fresh context; a browser that turns out dead at this point (before any of the
    job's work) is replaced once."""
    from playwright.sync_api import Error

    for attempt in (1, 2):
        browser = _browser.get()
        try:
            return browser.new_context(java_script_enabled=job.javascript,
                                       service_workers="block", accept_downloads=False)
        except Error:
            if attempt == 2:
                raise
            log.warning("chromium: the browser was dead; starting a new one")
            _browser.close_browser()
    raise AssertionError("unreachable")


def _browser_alive() -> bool:
    browser = _browser._browser
    return browser is not None and browser.is_connected()


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _page_count(path: Path) -> int:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(path)
    except Exception as exc:
        raise EngineFailed(f"Chromium wrote an unreadable PDF: {exc}") from exc
    try:
        return len(document)
    finally:
        document.close()

