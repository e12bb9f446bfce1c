"""Everything the HTML family fetches goes through the SSRF guard (`security.ssrf`).

`GuardedFetcher` (`make_fetcher()`) is the only way WeasyPrint reaches anything outside the
document: `data:` URIs are decoded, `http`/`https` go through `security.ssrf.open_url` (public
addresses only unless allow-listed, redirects checked hop by hop) with a size and time cap per
resource, a cap on the number of resources and a time budget for the whole document; every
other scheme (`file:`, `ftp:`, ...) is refused, and so is a relative URL without a base
(`NO_BASE`). Each refused or failed resource is noted for the job's warnings.
`_print_fetcher` adds `html.print-pdf`'s request headers, per-fetch timeout and no_network;
`download_document` fetches a document named by `document_url`.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from docmill.engines.html.print_params import FetchParams, PrintPdfParams
from docmill.errors import DocmillError, DownloadFailed, InvalidInput, UnsafeUrl

NO_BASE = "http://no-base-url.invalid/"  # reserved TLD: never resolved, refused by name


def _fetcher_class() -> type:
    """Built on first use: importing WeasyPrint loads pango, which the API process never
    needs."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    from docmill.security.ssrf import open_url, policy_from_settings, read_capped
    from docmill.settings import get_settings

    class GuardedFetcher(URLFetcher):
        def __init__(self) -> None:
            settings = get_settings()
            super().__init__(timeout=settings.html_resource_timeout_s,
                             allowed_protocols={"data"}, allow_redirects=False,
                             fail_on_errors=False)
            self.policy = policy_from_settings()
            self.timeout = settings.html_resource_timeout_s
            self.max_bytes = settings.html_resource_max_bytes
            self.max_resources = settings.html_max_resources
            self.budget_end = time.monotonic() + settings.html_fetch_budget_s
            self.max_redirects = settings.outbound_max_redirects
            self.warnings: list[str] = []
            self.refused: list[str] = []
            self.fetched: list[str] = []
            self.seen: set[str] = set()
            self.extra_headers: dict[str, str] = {}  # sent with every http(s) fetch

        def _note(self, url: str, message: str, refused: bool) -> None:
            if url in self.seen:
                return
            self.seen.add(url)
            if refused:
                self.refused.append(url)
            self.warnings.append(message)

        def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
            shown = url if len(url) <= 200 else url[:197] + "..."
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme == "data":
                return super().fetch(url, headers)
            if url.startswith(NO_BASE):
                relative = url[len(NO_BASE):]
                self._note(url, f"ignored the relative URL {relative!r}: give base_url to load "
                           "relative resources", refused=True)
                raise UnsafeUrl("relative URL without base_url")
            if scheme not in ("http", "https"):
                self._note(url, f"refused {shown}: only http, https and data URLs may be "
                           "loaded", refused=True)
                raise UnsafeUrl(f"refused {shown}")
            if len(self.fetched) >= self.max_resources:
                self._note(url, f"skipped {shown}: the document loads more than "
                           f"{self.max_resources} resources", refused=True)
                raise DownloadFailed("too many resources")
            remaining = self.budget_end - time.monotonic()
            if remaining <= 0:
                self._note(url, f"skipped {shown}: the time budget for loading resources "
                           "is spent", refused=True)
                raise DownloadFailed("fetch budget spent")
            timeout = min(self.timeout, remaining)
            deadline = time.monotonic() + timeout
            self.fetched.append(url)
            try:
                extra: dict[str, Any] = \
                    {"headers": self.extra_headers} if self.extra_headers else {}
                with open_url(self.policy, url, timeout=timeout,
                              max_redirects=self.max_redirects, **extra) as response:
                    if response.status_code >= 400:
                        raise DownloadFailed(f"HTTP {response.status_code}")
                    body = read_capped(response, max_bytes=self.max_bytes, deadline=deadline,
                                       timeout=timeout)
                    content_type = response.headers.get("content-type", "")
                    final_url = str(response.url)
            except UnsafeUrl as exc:
                self._note(url, f"refused {shown}: {exc.message}", refused=True)
                raise
            except DocmillError as exc:
                self._note(url, f"could not load {shown}: {exc.message}", refused=False)
                raise DownloadFailed(exc.message) from exc
            except Exception as exc:  # httpx errors while streaming the body
                self._note(url, f"could not load {shown}: {type(exc).__name__}: {exc}",
                           refused=False)
                raise DownloadFailed(str(exc)) from exc
            return URLFetcherResponse(final_url, bytes(body),
                                      {"Content-Type": content_type} if content_type else {})

    return GuardedFetcher


def make_fetcher() -> Any:
    return _fetcher_class()()


def _tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) or "SSL" in str(current) \
                or "CERTIFICATE" in str(current).upper():
            return True
        current = current.__cause__ or current.__context__
    return False


def download_document(params: FetchParams, target: Path) -> Path:
    """The document at `params.document_url`, through the SSRF guard, size and time capped."""
    from docmill.security.ssrf import open_url, policy_from_settings
    from docmill.settings import get_settings

    settings = get_settings()
    url = params.document_url or ""
    timeout = min(settings.url_download_timeout_s, params.http_timeout_s or float("inf"))
    deadline = time.monotonic() + timeout
    size = 0
    try:
        with open_url(policy_from_settings(), url, timeout=timeout,
                      max_redirects=settings.outbound_max_redirects,
                      headers=params.headers()) as response, open(target, "wb") as sink:
            if response.status_code >= 400:
                raise DownloadFailed(f"Error downloading document content from supplied url: "
                                     f"HTTP {response.status_code}")
            for chunk in response.iter_bytes(64 * 1024):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise DownloadFailed("The document at the supplied url is larger than "
                                         f"{settings.max_upload_bytes} bytes")
                if time.monotonic() > deadline:
                    raise DownloadFailed("Timed out downloading document content from "
                                         "supplied url")
                sink.write(chunk)
    except UnsafeUrl as exc:
        raise UnsafeUrl(f"Refused to download document content from supplied url: "
                        f"{exc.message}") from exc
    except DocmillError as exc:
        if _tls_failure(exc):
            raise DownloadFailed("SSL Error downloading document content from supplied "
                                 "url.") from exc
        if exc.message.startswith(("Error downloading", "The document", "Timed out")):
            raise
        raise DownloadFailed(f"Error downloading document content from supplied url: "
                             f"{exc.message}") from exc
    except Exception as exc:  # httpx errors while streaming the body
        if _tls_failure(exc):
            raise DownloadFailed("SSL Error downloading document content from supplied "
                                 "url.") from exc
        raise DownloadFailed(f"Error downloading document content from supplied url: "
                             f"{type(exc).__name__}: {exc}") from exc
    if size == 0:
        raise InvalidInput("The document at the supplied url is empty")
    return target


def _print_fetcher(params: PrintPdfParams) -> Any:
    """The guarded fetcher, plus request headers, a per-fetch timeout and no_network."""
    base = _fetcher_class()

    class PrintFetcher(base):  # type: ignore[misc, valid-type]
        timeout: float  # set by weasyprint's URLFetcher

        def __init__(self) -> None:
            super().__init__()
            self.extra_headers = params.headers()
            if params.http_timeout_s:
                self.timeout = min(self.timeout, params.http_timeout_s)

        def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
            if params.no_network and urlsplit(url).scheme.lower() in ("http", "https"):
                shown = url if len(url) <= 200 else url[:197] + "..."
                self._note(url, f"refused {shown}: no_network is set", refused=True)
                raise UnsafeUrl("no_network")
            return super().fetch(url, headers)

    return PrintFetcher()
