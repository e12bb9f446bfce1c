"""The one SSRF guard for every outbound request.

URL inputs, webhooks and resources fetched while rendering HTML all go through here. The
guard resolves the host itself, refuses any address that is not globally routable (loopback,
private, link-local, CGNAT, multicast, unspecified, unique-local, cloud metadata) unless the
allow-list names it, and then connects to exactly the address it checked, so DNS cannot
rebind between the check and the connection. Redirects are followed by hand, each hop checked
again. Only http and https are spoken, and proxies from the environment are ignored.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from docmill.errors import DownloadFailed, TooLarge, UnsafeUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class SsrfPolicy:
    """Which destinations outbound requests may reach beyond the public internet."""

    allow: tuple[str, ...] = ()
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, default=()
    )
    _hosts: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        networks, hosts = [], set()
        for entry in self.allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_hosts", frozenset(hosts))

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._hosts

    def address_allowed(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self._networks):
            return True
        if ip in METADATA_ADDRESSES:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped is not None:
            return self.address_allowed(mapped)
        return ip.is_global and not ip.is_multicast

    def check_address(self, host: str, ip: IPAddress) -> None:
        if not (self.host_allowed(host) or self.address_allowed(ip)):
            raise UnsafeUrl(f"refused to connect to {host} ({ip}): address is not public")

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`, each checked; one bad address refuses the host."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            addresses = [literal]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise DownloadFailed(f"cannot resolve host {host!r}: {exc.strerror}") from exc
            addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0])
                                           for i in infos))
        for ip in addresses:
            self.check_address(host, ip)
        return addresses

    def check_url(self, url: str) -> None:
        """Scheme and destination check without connecting (resolves the host)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise UnsafeUrl(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise UnsafeUrl("the URL has no host")
        self.resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves and checks the host, then connects to the checked address itself."""

    def __init__(self, policy: SsrfPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        last_error: Exception | None = None
        for ip in self.policy.resolve(host, port):
            try:
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"cannot connect to {host}")


class GuardedTransport(httpx.HTTPTransport):
    """httpx transport whose every TCP connection goes through the SSRF policy."""

    def __init__(self, policy: SsrfPolicy, **kwargs: typing.Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        # httpx builds its pool without a network_backend argument; rebuild it with ours,
        # keeping the TLS context httpx made (SNI and certificates still use the host name).
        self._pool = httpcore.ConnectionPool(
            ssl_context=self._pool._ssl_context,
            network_backend=_GuardedBackend(policy),
        )


def guarded_client(policy: SsrfPolicy, timeout: float) -> httpx.Client:
    return httpx.Client(
        transport=GuardedTransport(policy),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "Docmill"},
    )


@contextmanager
def open_url(
    policy: SsrfPolicy,
    url: str,
    *,
    timeout: float,
    max_redirects: int = 5,
    method: str = "GET",
    **request_kwargs: typing.Any,
) -> Iterator[httpx.Response]:
    """Send a request through the guard, following redirects hop by hop; yields the streaming
    final response. Raises UnsafeUrl for a refused destination, DownloadFailed otherwise."""
    with guarded_client(policy, timeout) as client:
        current = url
        for _hop in range(max_redirects + 1):
            policy.check_url(current)
            try:
                response = client.send(
                    client.build_request(method, current, **request_kwargs), stream=True
                )
            except UnsafeUrl:
                raise
            except httpx.TimeoutException as exc:
                raise DownloadFailed(f"timed out fetching {current}") from exc
            except httpx.HTTPError as exc:
                raise DownloadFailed(f"cannot fetch {current}: {exc}") from exc
            if response.status_code in REDIRECT_CODES and "location" in response.headers:
                response.close()
                current = urljoin(current, response.headers["location"])
                if response.status_code == 303:
                    method, request_kwargs = "GET", {}
                continue
            try:
                yield response
            finally:
                response.close()
            return
        raise DownloadFailed(f"too many redirects fetching {url}")


def iter_download(
    policy: SsrfPolicy, url: str, *, timeout: float, max_bytes: int
) -> Iterator[bytes]:
    """Stream the body of `url` in chunks, refusing more than `max_bytes` or more than
    `timeout` seconds in all (httpx's own timeouts are per read, so a slow drip would never
    end)."""
    deadline = time.monotonic() + timeout
    with open_url(policy, url, timeout=timeout) as response:
        if response.status_code >= 400:
            raise DownloadFailed(f"fetching {url} answered HTTP {response.status_code}")
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"the file at {url} is larger than {max_bytes} bytes")
        received = 0
        try:
            for chunk in response.iter_bytes(64 * 1024):
                received += len(chunk)
                if time.monotonic() > deadline:
                    raise DownloadFailed(f"timed out fetching {url} after {timeout:g} s")
                if received > max_bytes:
                    raise TooLarge(f"the file at {url} is larger than {max_bytes} bytes")
                yield chunk
        except httpx.TimeoutException as exc:
            raise DownloadFailed(f"timed out fetching {url}") from exc
        except httpx.HTTPError as exc:
            raise DownloadFailed(f"cannot fetch {url}: {exc}") from exc


def read_capped(response: httpx.Response, *, max_bytes: int, deadline: float,
                timeout: float) -> bytes:
    """The whole body of a streaming response, refused (DownloadFailed) past `max_bytes`
    (declared or received) or past the monotonic `deadline` (`timeout` names it in the
    message): for resources a renderer needs in memory."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DownloadFailed(f"larger than {max_bytes} bytes")
    body = bytearray()
    for chunk in response.iter_bytes(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise DownloadFailed(f"larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise DownloadFailed(f"took longer than {timeout:.3g} s")
    return bytes(body)


def policy_from_settings() -> SsrfPolicy:
    from docmill.settings import get_settings

    return SsrfPolicy(allow=tuple(get_settings().ssrf_allow_hosts))
