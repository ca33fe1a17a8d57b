"""Guarded fetching of remote media: the one way a backend gets a URL's bytes.

A client's image URL is an instruction to make a request from inside the
translator's network, so :class:`MediaFetcher` only fetches what is safe:

- ``http`` and ``https`` only;
- the host's addresses are checked and loopback, private, link-local,
  multicast, reserved and unspecified ones refused, unless an allow-list names
  the host or its network. The check sits in the connector's resolver, so the
  connection goes to exactly the addresses that were checked (no window for
  DNS rebinding); literal IP hosts, which skip the resolver, are checked first;
- at most ``max_redirects`` redirects, each one checked again;
- a content-type check, a streamed size cap, and a timeout.

Every refusal is a :class:`~translator.errors.FetchRefusedError` (400) whose
``param`` names the part that carried the URL, and nothing is sent to a
refused address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ._telemetry import WATCH
from .errors import FetchRefusedError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Allow",
    "Fetched",
    "GuardedResolver",
    "MediaFetcher",
    "is_public_address",
    "split_data_uri",
]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_FAILED = "fetch_failed"  # the code of a URL that could not be fetched (not a refusal)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Fetched(msgspec.Struct, frozen=True):
    """A fetched body and its media type (``image/png``, parameters stripped)."""

    content_type: str
    data: bytes


def split_data_uri(uri: str) -> tuple[str, str] | None:
    """``(media_type, base64_payload)`` of a base64 ``data:`` URI, sliced, never decoded.

    None when ``uri`` is not a base64 data URI.
    """
    if not uri.startswith("data:"):
        return None
    comma = uri.find(",", 5)
    if comma < 0:
        return None
    header = uri[5:comma]
    if not header.endswith(";base64"):
        return None
    media_type = header[:-7].split(";", 1)[0].strip().lower()
    return media_type, uri[comma + 1 :]


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` may be fetched from without an allow-list entry."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public_address(mapped)
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


class Allow:
    """An allow-list: host names (exact, case-insensitive) and IP networks.

    ``Allow(["images.internal", "127.0.0.1", "10.1.0.0/16"])``: an entry that
    parses as an address or a network is a network; anything else is a host
    name, trusted whatever it resolves to.
    """

    __slots__ = ("hosts", "networks")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        self.hosts = frozenset(hosts)
        self.networks = tuple(networks)

    def host(self, host: str) -> bool:
        """Whether the host name itself is allowed."""
        return host.lower().rstrip(".") in self.hosts

    def address(self, address: IPAddress) -> bool:
        """Whether ``address`` may be connected to."""
        if any(address in net for net in self.networks if net.version == address.version):
            return True
        return is_public_address(address)


class _Blocked(OSError):
    """Raised by the resolver for a host that resolves to a refused address."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, which may not be fetched")
        self.host = host
        self.address = address


class GuardedResolver(AbstractResolver):
    """A resolver that refuses hosts resolving to any address ``allow`` does not admit."""

    def __init__(self, allow: Allow, inner: AbstractResolver | None = None) -> None:
        self._allow = allow
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        if self._allow.host(host):
            return results
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"])
            except ValueError:
                raise _Blocked(host, result["host"]) from None
            if not self._allow.address(address):
                raise _Blocked(host, result["host"])
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


class MediaFetcher:
    """Fetches remote media for backends, refusing what is unsafe.

    ``allow`` lists host names and networks that may be fetched from although
    their addresses are not public (``["127.0.0.1"]`` in tests, an internal
    image store in production). ``resolver`` replaces the system resolver
    (the guard wraps it). The fetcher owns a small pooled session whose
    connector carries the guard; :meth:`aclose` closes it.
    """

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = 30.0,
        max_redirects: int = 3,
        resolver: AbstractResolver | None = None,
        limit: int = 20,
    ) -> None:
        self.allow = Allow(allow)
        self.max_bytes = max_bytes
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_redirects = max_redirects
        self._resolver = resolver
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MediaFetcher:
        """A fetcher from a configuration table: ``allow``, ``max_bytes``, ``timeout``,
        ``max_redirects`` (each optional)."""
        unknown = set(options) - {"allow", "max_bytes", "timeout", "max_redirects"}
        if unknown:
            raise ValueError(f"unknown fetch options: {', '.join(sorted(unknown))}")
        return cls(
            allow=[str(a) for a in options.get("allow", ())],
            max_bytes=int(options.get("max_bytes", DEFAULT_MAX_BYTES)),
            timeout=float(options.get("timeout", 30.0)),
            max_redirects=int(options.get("max_redirects", 3)),
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The fetcher's own session (created inside the running event loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.allow, self._resolver), limit=self._limit
            )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def fetch(self, url: str, *, param: str, accept: Sequence[str] = ("image/",)) -> Fetched:
        """The body at ``url``; ``param`` names where the URL came from, for errors.

        ``accept`` lists media-type prefixes (``"image/"``) or exact types.
        Raises :class:`FetchRefusedError` for anything unsafe or unusable.
        The bytes read, or the refusal, are reported to the request's watcher.
        """
        watcher = WATCH.get()
        if watcher is None:
            return await self._fetch(url, param, accept)
        try:
            fetched = await self._fetch(url, param, accept)
        except FetchRefusedError as exc:
            watcher.media_refused("failed" if exc.code == _FAILED else "refused")
            raise
        watcher.media_fetched(len(fetched.data))
        return fetched

    async def _fetch(self, url: str, param: str, accept: Sequence[str]) -> Fetched:
        target = self._check(url, param)
        for _ in range(self.max_redirects + 1):
            try:
                async with self.session.get(
                    target, allow_redirects=False, timeout=self.timeout
                ) as response:
                    if response.status in _REDIRECTS:
                        location = response.headers.get("Location")
                        if not location:
                            raise _failed(param, f"{target} redirected without a Location")
                        target = self._check(str(target.join(URL(location))), param)
                        continue
                    if response.status >= 400:
                        raise _failed(param, f"{target} answered HTTP {response.status}")
                    return await self._read(response, target, param, accept)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, _Blocked):
                    raise _refused(param, str(exc.os_error)) from None
                raise _failed(param, f"{target.host} could not be reached") from exc
            except TimeoutError as exc:
                raise _failed(param, f"{target} did not answer in time") from exc
            except aiohttp.InvalidURL as exc:
                raise _refused(param, f"{target} is not a valid URL") from exc
            except (aiohttp.ClientError, OSError) as exc:
                why = f"{target} could not be fetched ({type(exc).__name__})"
                raise _failed(param, why) from exc
        raise _refused(param, f"more than {self.max_redirects} redirects")

    def _check(self, url: str, param: str) -> URL:
        """The parsed URL if its scheme and literal address are acceptable."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise _refused(param, "not a valid URL") from None
        if parsed.scheme not in ("http", "https"):
            shown = parsed.scheme or "no scheme"
            raise _refused(param, f"only http and https URLs are fetched, not {shown}")
        host = parsed.raw_host
        if not host:
            raise _refused(param, "the URL has no host")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return parsed  # a name: the resolver checks what it resolves to
        if not self.allow.address(address):
            raise _refused(param, f"{host} is not a public address")
        return parsed

    async def _read(
        self, response: aiohttp.ClientResponse, url: URL, param: str, accept: Sequence[str]
    ) -> Fetched:
        content_type = response.content_type.lower()
        if not any(
            content_type.startswith(a) if a.endswith("/") else content_type == a for a in accept
        ):
            wanted = ", ".join(f"{a}*" if a.endswith("/") else a for a in accept)
            shown = content_type or "no content type"
            raise _refused(param, f"{url} is {shown}, not {wanted}")
        length = response.content_length
        if length is not None and length > self.max_bytes:
            raise _refused(param, f"{url} is larger than {self.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:
                response.close()
                raise _refused(param, f"{url} is larger than {self.max_bytes} bytes")
        return Fetched(content_type, bytes(body))

    async def aclose(self) -> None:
        """Close the fetcher's session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _refused(param: str, why: str) -> FetchRefusedError:
    return FetchRefusedError(f"The URL at '{param}' may not be fetched: {why}.", param=param)


def _failed(param: str, why: str) -> FetchRefusedError:
    return FetchRefusedError(
        f"The URL at '{param}' could not be fetched: {why}.", param=param, code=_FAILED
    )
