"""The SSRF guard, against real local servers on loopback addresses (never outside ones).

127.0.0.2 stands for a trusted internal host: the whole 127/8 is loopback on Linux, so a
server bound there is reachable only when the allow-list names it.
"""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from docmill.errors import DownloadFailed, TooLarge, UnsafeUrl
from docmill.security.ssrf import SsrfPolicy, iter_download, open_url

REFUSED = [
    "http://127.0.0.1/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fc00::1]/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://localhost/",
    "http://2130706433/",  # 127.0.0.1 as an integer
    "file:///etc/passwd",
    "ftp://example.com/",
    "gopher://127.0.0.1:70/",
]


class _Handler(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []
    redirect_to: str | None = None
    body = b"hello from an internal host"

    def do_GET(self) -> None:  # noqa: N802
        type(self).hits.append(self.path)
        if self.path.startswith("/redirect") and self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str):
    handler = type("H", (_Handler,), {"hits": []})
    httpd = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler


@pytest.fixture
def internal():
    httpd, handler = _serve("127.0.0.2")
    yield f"http://127.0.0.2:{httpd.server_address[1]}", handler
    httpd.shutdown()


@pytest.fixture
def loopback():
    httpd, handler = _serve("127.0.0.1")
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()


@pytest.mark.parametrize("url", REFUSED)
def test_refused_destinations(url):
    with pytest.raises(UnsafeUrl):
        SsrfPolicy().check_url(url)


def test_loopback_server_is_never_contacted(loopback):
    url, handler = loopback
    with pytest.raises(UnsafeUrl), open_url(SsrfPolicy(), url + "/secret", timeout=5):
        pass
    assert handler.hits == []


def test_allow_listed_internal_host_is_reached(internal):
    url, handler = internal
    body = b"".join(iter_download(SsrfPolicy(allow=("127.0.0.2",)), url + "/doc",
                                  timeout=5, max_bytes=1000))
    assert body == _Handler.body and handler.hits == ["/doc"]


def test_allow_list_takes_networks(internal):
    url, _ = internal
    policy = SsrfPolicy(allow=("127.0.0.0/30",))
    assert b"".join(iter_download(policy, url, timeout=5, max_bytes=1000)) == _Handler.body


def test_redirect_from_allowed_host_to_loopback_is_refused(internal, loopback):
    url, handler = internal
    target, target_handler = loopback
    handler.redirect_to = target + "/admin"
    with pytest.raises(UnsafeUrl):
        list(iter_download(SsrfPolicy(allow=("127.0.0.2",)), url + "/redirect",
                           timeout=5, max_bytes=1000))
    assert handler.hits == ["/redirect"] and target_handler.hits == []


def test_redirect_within_allowed_host_is_followed(internal):
    url, handler = internal
    handler.redirect_to = "/final"
    body = b"".join(iter_download(SsrfPolicy(allow=("127.0.0.2",)), url + "/redirect",
                                  timeout=5, max_bytes=1000))
    assert body == _Handler.body and handler.hits == ["/redirect", "/final"]


def test_size_cap_while_streaming(internal):
    url, _ = internal
    with pytest.raises(TooLarge):
        list(iter_download(SsrfPolicy(allow=("127.0.0.2",)), url, timeout=5, max_bytes=10))


def test_unresolvable_host_is_a_download_error():
    with pytest.raises(DownloadFailed):
        SsrfPolicy().check_url("http://no-such-host.invalid/")


def test_allowed_hostname_still_pins_the_checked_address(internal, monkeypatch):
    """A name on the allow-list is resolved once and the connection goes to that address."""
    url, handler = internal
    port = url.rsplit(":", 1)[1]
    import socket

    real = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):
        if host == "docs.internal.test":
            return real("127.0.0.2", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    body = io.BytesIO()
    for chunk in iter_download(SsrfPolicy(allow=("docs.internal.test",)),
                               f"http://docs.internal.test:{port}/named", timeout=5,
                               max_bytes=1000):
        body.write(chunk)
    assert body.getvalue() == _Handler.body and handler.hits == ["/named"]
