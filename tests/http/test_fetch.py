"""The guarded media fetcher, against an image host on loopback."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses

from tests.ollama_server import PNG, ImageHost
from translator._fetch import (
    Allow,
    GuardedResolver,
    MediaFetcher,
    is_public_address,
    split_data_uri,
)
from translator.errors import FetchRefusedError

PARAM = "messages[0].content[1].image_url.url"


class StaticResolver(AbstractResolver):
    """Resolves names from a table; counts lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"{host}: no such host")
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.table[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def host() -> AsyncIterator[tuple[ImageHost, TestServer]]:
    image_host = ImageHost()
    server = TestServer(image_host.app(), host="127.0.0.1")
    await server.start_server()
    yield image_host, server
    image_host.release.set()
    await server.close()


def url(server: TestServer, path: str, name: str = "127.0.0.1") -> str:
    return f"http://{name}:{server.port}{path}"


async def refused(fetcher: MediaFetcher, target: str, **kwargs: object) -> FetchRefusedError:
    with pytest.raises(FetchRefusedError) as info:
        await fetcher.fetch(target, param=PARAM, **kwargs)  # type: ignore[arg-type]
    await fetcher.aclose()
    error = info.value
    assert error.status == 400
    assert error.param == PARAM
    assert error.to_openai()["error"]["param"] == PARAM
    return error


async def test_an_allowed_host_is_fetched(host: tuple[ImageHost, TestServer]) -> None:
    images, server = host
    fetcher = MediaFetcher(allow=["127.0.0.1"])
    fetched = await fetcher.fetch(url(server, "/cat.png"), param=PARAM)
    await fetcher.aclose()
    assert fetched.content_type == "image/png"
    assert fetched.data == PNG
    assert images.hits == ["/cat.png"]


async def test_a_loopback_url_is_refused_without_a_request(
    host: tuple[ImageHost, TestServer],
) -> None:
    images, server = host
    error = await refused(MediaFetcher(), url(server, "/cat.png"))
    assert "127.0.0.1 is not a public address" in error.message
    assert images.hits == []


async def test_a_name_resolving_to_loopback_is_refused_without_a_request(
    host: tuple[ImageHost, TestServer],
) -> None:
    images, server = host
    resolver = StaticResolver({"images.test": ["127.0.0.1"]})
    error = await refused(MediaFetcher(resolver=resolver), url(server, "/cat.png", "images.test"))
    assert "images.test resolves to 127.0.0.1" in error.message
    assert resolver.lookups == ["images.test"]
    assert images.hits == []


@pytest.mark.parametrize("allow", [["images.test"], ["IMAGES.TEST."], ["127.0.0.0/8"]])
async def test_the_allow_list_admits_names_and_networks(
    host: tuple[ImageHost, TestServer], allow: list[str]
) -> None:
    images, server = host
    resolver = StaticResolver({"images.test": ["127.0.0.1"]})
    fetcher = MediaFetcher(allow=allow, resolver=resolver)
    fetched = await fetcher.fetch(url(server, "/cat.png", "images.test"), param=PARAM)
    await fetcher.aclose()
    assert fetched.data == PNG
    assert images.hits == ["/cat.png"]


async def test_a_redirect_is_followed(host: tuple[ImageHost, TestServer]) -> None:
    images, server = host
    fetcher = MediaFetcher(allow=["127.0.0.1"])
    fetched = await fetcher.fetch(url(server, "/redirect"), param=PARAM)
    await fetcher.aclose()
    assert fetched.data == PNG
    assert images.hits == ["/redirect", "/cat.png"]


async def test_a_redirect_to_a_refused_address_is_not_followed(
    host: tuple[ImageHost, TestServer],
) -> None:
    images, server = host
    images.redirect_to = url(server, "/cat.png")  # a literal loopback address
    resolver = StaticResolver({"images.test": ["127.0.0.1"]})
    fetcher = MediaFetcher(allow=["images.test"], resolver=resolver)
    await refused(fetcher, url(server, "/redirect", "images.test"))
    assert images.hits == ["/redirect"]


async def test_redirects_are_limited(host: tuple[ImageHost, TestServer]) -> None:
    images, server = host
    fetcher = MediaFetcher(allow=["127.0.0.1"], max_redirects=2)
    error = await refused(fetcher, url(server, "/loop"))
    assert "more than 2 redirects" in error.message
    assert images.hits == ["/loop"] * 3


@pytest.mark.parametrize(
    "target",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/cat.png",
        "gopher://127.0.0.1/",
        "data:image/png;base64,AAAA",
        "/cat.png",
        "http:///cat.png",
        "http://10.0.0.1/cat.png",
        "http://172.16.0.1/cat.png",
        "http://192.168.1.1/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://224.0.0.1/cat.png",
        "http://240.0.0.1/cat.png",
        "http://0.0.0.0/cat.png",
        "http://[::1]/cat.png",
        "http://[::ffff:127.0.0.1]/cat.png",
        "http://[fe80::1]/cat.png",
        "http://[fc00::1]/cat.png",
    ],
)
async def test_unsafe_urls_are_refused_before_any_request(target: str) -> None:
    with aioresponses() as mocked:  # nothing may leave the machine, even if the guard fails
        await refused(MediaFetcher(), target)
        assert not mocked.requests


async def test_the_content_type_is_checked(host: tuple[ImageHost, TestServer]) -> None:
    _, server = host
    error = await refused(MediaFetcher(allow=["127.0.0.1"]), url(server, "/page.html"))
    assert "text/html, not image/*" in error.message


async def test_an_exact_content_type_may_be_asked_for(host: tuple[ImageHost, TestServer]) -> None:
    _, server = host
    fetcher = MediaFetcher(allow=["127.0.0.1"])
    fetched = await fetcher.fetch(url(server, "/page.html"), param=PARAM, accept=("text/html",))
    await fetcher.aclose()
    assert fetched.content_type == "text/html"


async def test_the_size_cap_holds_on_a_stream_without_length(
    host: tuple[ImageHost, TestServer],
) -> None:
    _, server = host
    fetcher = MediaFetcher(allow=["127.0.0.1"], max_bytes=100_000)
    error = await refused(fetcher, url(server, "/big.png"))
    assert "larger than 100000 bytes" in error.message


async def test_the_size_cap_holds_on_a_declared_length(host: tuple[ImageHost, TestServer]) -> None:
    _, server = host
    error = await refused(MediaFetcher(allow=["127.0.0.1"], max_bytes=10), url(server, "/cat.png"))
    assert "larger than 10 bytes" in error.message


async def test_a_slow_host_times_out(host: tuple[ImageHost, TestServer]) -> None:
    _, server = host
    fetcher = MediaFetcher(allow=["127.0.0.1"], timeout=0.2)
    error = await refused(fetcher, url(server, "/slow.png"))
    assert error.code == "fetch_failed"
    assert "did not answer in time" in error.message


async def test_an_error_status_fails_the_fetch(host: tuple[ImageHost, TestServer]) -> None:
    _, server = host
    error = await refused(MediaFetcher(allow=["127.0.0.1"]), url(server, "/missing.png"))
    assert error.code == "fetch_failed"
    assert "HTTP 404" in error.message


async def test_an_unreachable_host_fails_the_fetch() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await refused(MediaFetcher(allow=["127.0.0.1"]), f"http://127.0.0.1:{port}/cat.png")
    assert error.code == "fetch_failed"


async def test_the_resolver_refuses_a_name_with_any_refused_address() -> None:
    inner = StaticResolver({"mixed.test": ["93.184.216.34", "10.0.0.5"], "ok.test": ["8.8.8.8"]})
    resolver = GuardedResolver(Allow(), inner)
    with pytest.raises(OSError, match=r"10\.0\.0\.5"):
        await resolver.resolve("mixed.test", 443)
    assert [r["host"] for r in await resolver.resolve("ok.test", 443)] == ["8.8.8.8"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("100.64.0.1", False),
        ("169.254.1.1", False),
        ("224.0.0.251", False),
        ("255.255.255.255", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_data_uris_are_sliced_not_decoded() -> None:
    assert split_data_uri("data:image/png;base64,iVBORw0KGgo=") == ("image/png", "iVBORw0KGgo=")
    assert split_data_uri("data:Image/JPEG;name=x.jpg;base64,/9j/") == ("image/jpeg", "/9j/")
    assert split_data_uri("data:image/svg+xml,<svg/>") is None
    assert split_data_uri("https://example.com/cat.png") is None
    assert split_data_uri("data:image/png;base64") is None


def test_a_fetcher_from_configuration() -> None:
    fetcher = MediaFetcher.from_options(
        {"allow": ["images.internal", "10.1.0.0/16"], "max_bytes": 1024, "timeout": 5}
    )
    assert fetcher.allow.host("images.internal")
    assert fetcher.allow.address(ipaddress.ip_address("10.1.2.3"))
    assert not fetcher.allow.address(ipaddress.ip_address("10.2.0.1"))
    assert (fetcher.max_bytes, fetcher.timeout.total, fetcher.max_redirects) == (1024, 5.0, 3)
    with pytest.raises(ValueError, match="max_size"):
        MediaFetcher.from_options({"max_size": 10})
