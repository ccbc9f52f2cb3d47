"""The safe fetcher without a network: the address check, and the redirect loop with an injected resolver and
httpx's MockTransport (requests to the checked IP, the original Host and SNI, every hop checked)."""

from __future__ import annotations

import httpx
import pytest

from zhiku.errors import ZhikuError
from zhiku.knowledge.fetch import FetchPolicy, FetchRequest, address_refusal, fetch, parse_url

PUBLIC = "93.184.216.34"
DNS = {"public.example": [PUBLIC], "other.example": ["198.51.200.7"], "internal.example": ["10.0.0.5"],
       "mixed.example": [PUBLIC, "192.168.1.10"], "v6.example": ["::1"], "mapped.example": ["::ffff:127.0.0.1"]}


async def resolver(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError(f"unknown host {host}")
    return DNS[host]


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.8.8", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254", "0.0.0.0",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "100.64.0.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "ff0e::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "fec0::1"])
def test_private_addresses_are_refused(address: str) -> None:
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None


@pytest.mark.parametrize("url", ["", "ftp://public.example/x", "file:///etc/passwd", "javascript:alert(1)",
                                 "/relative/path", "http://", "http://x/" + "a" * 3000])
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(ZhikuError) as caught:
        parse_url(url)
    assert caught.value.code == "url_invalid" and caught.value.status == 400


def transport(routes: dict[str, httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return routes[f"{request.headers['host']}{request.url.raw_path.decode()}"]
    return httpx.MockTransport(handle)


async def test_the_request_goes_to_the_checked_address_with_the_original_host() -> None:
    seen: list[httpx.Request] = []
    routes = {"public.example:8080/page": httpx.Response(200, headers={"content-type": "text/html; charset=GBK"},
                                                         content=b"<p>hi</p>")}
    page = await fetch("http://public.example:8080/page", FetchPolicy(), resolver=resolver,
                       transport=transport(routes, seen))
    assert page.body == b"<p>hi</p>" and page.content_type == "text/html" and page.charset == "gbk"
    assert seen[0].url.host == PUBLIC and seen[0].url.port == 8080
    assert seen[0].headers["host"] == "public.example:8080"
    assert seen[0].extensions["sni_hostname"] == "public.example"


@pytest.mark.parametrize("host", ["internal.example", "mixed.example", "v6.example", "mapped.example"])
async def test_a_host_resolving_to_a_private_address_is_refused(host: str) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(ZhikuError) as caught:
        await fetch(f"http://{host}/", FetchPolicy(), resolver=resolver, transport=transport({}, seen))
    assert caught.value.code == "url_private_address" and caught.value.status == 403
    assert "ZHIKU_ALLOW_PRIVATE_URLS" in caught.value.message
    assert not seen  # refused before any connection


async def test_every_redirect_hop_is_checked() -> None:
    seen: list[httpx.Request] = []
    routes = {"public.example/start": httpx.Response(302, headers={"location": "http://other.example/next"}),
              "other.example/next": httpx.Response(301, headers={"location": "http://internal.example/admin"})}
    with pytest.raises(ZhikuError) as caught:
        await fetch("http://public.example/start", FetchPolicy(), resolver=resolver,
                    transport=transport(routes, seen))
    assert caught.value.code == "url_private_address" and "internal.example" in caught.value.message
    assert [r.headers["host"] for r in seen] == ["public.example", "other.example"]


async def test_a_redirect_to_another_scheme_is_refused() -> None:
    routes = {"public.example/": httpx.Response(302, headers={"location": "file:///etc/passwd"})}
    with pytest.raises(ZhikuError) as caught:
        await fetch("http://public.example/", FetchPolicy(), resolver=resolver, transport=transport(routes, []))
    assert caught.value.code == "url_invalid"


async def test_relative_redirects_are_followed_up_to_the_limit() -> None:
    routes = {f"public.example/{i}": httpx.Response(302, headers={"location": f"/{i + 1}"}) for i in range(10)}
    routes["public.example/5"] = httpx.Response(200, text="arrived")
    page = await fetch("http://public.example/0", FetchPolicy(), resolver=resolver, transport=transport(routes, []))
    assert page.body == b"arrived" and page.final_url == "http://public.example/5"
    assert page.url == "http://public.example/0"
    routes["public.example/5"] = httpx.Response(302, headers={"location": "/6"})
    with pytest.raises(ZhikuError) as caught:
        await fetch("http://public.example/0", FetchPolicy(), resolver=resolver, transport=transport(routes, []))
    assert caught.value.code == "url_too_many_redirects"


async def test_the_body_stops_at_the_size_cap() -> None:
    async def endless():
        while True:
            yield b"x" * 4096

    routes = {"public.example/big": httpx.Response(200, content=endless()),
              "public.example/declared": httpx.Response(200, headers={"content-length": "999999"}, content=b"")}
    for path in ("big", "declared"):
        with pytest.raises(ZhikuError) as caught:
            await fetch(f"http://public.example/{path}", FetchPolicy(max_bytes=10_000), resolver=resolver,
                        transport=transport(routes, []))
        assert caught.value.code == "url_too_large" and caught.value.status == 413


@pytest.mark.parametrize(("status", "error_status"), [(404, 422), (403, 422), (500, 502), (429, 502)])
async def test_http_errors_carry_the_status(status: int, error_status: int) -> None:
    routes = {"public.example/": httpx.Response(status)}
    with pytest.raises(ZhikuError) as caught:
        await fetch("http://public.example/", FetchPolicy(), resolver=resolver, transport=transport(routes, []))
    assert caught.value.code == "url_http_error" and caught.value.detail == {"status": status}
    assert caught.value.status == error_status  # 5xx: the job queue tries again


async def test_an_unknown_host_is_unreachable() -> None:
    with pytest.raises(ZhikuError) as caught:
        await fetch("http://nowhere.example/", FetchPolicy(), resolver=resolver, transport=transport({}, []))
    assert caught.value.code == "url_unreachable"


async def test_allow_private_lets_private_addresses_through() -> None:
    routes = {"internal.example/": httpx.Response(200, text="intranet")}
    page = await fetch("http://internal.example/", FetchPolicy(allow_private=True), resolver=resolver,
                       transport=transport(routes, []))
    assert page.body == b"intranet"


async def test_a_request_sends_its_method_headers_and_body_and_keeps_them_only_across_307() -> None:
    seen: list[httpx.Request] = []
    routes = {"public.example/a": httpx.Response(307, headers={"location": "/b"}),
              "public.example/b": httpx.Response(303, headers={"location": "/c"}),
              "public.example/c": httpx.Response(200, text="done")}
    sent = FetchRequest(method="POST", headers=(("X-Token", "t"), ("Host", "evil.example"), ("Accept", "*/*")),
                        body=b'{"q": 1}')
    page = await fetch("http://public.example/a", FetchPolicy(), resolver=resolver,
                       transport=transport(routes, seen), request=sent)
    assert page.body == b"done"
    assert [(r.method, r.content) for r in seen] == [("POST", b'{"q": 1}'), ("POST", b'{"q": 1}'), ("GET", b"")]
    assert all(r.headers["host"] == "public.example" and r.headers["x-token"] == "t" for r in seen)
    assert seen[0].headers["accept"] == "*/*"
