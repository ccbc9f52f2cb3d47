"""The one way Zhiku fetches a URL someone gave it: link collections, website crawls, workflow HTTP nodes.

A URL from a user may point anywhere, including at the machine Zhiku runs on or its private network
(a cloud metadata service, a database's admin page). So every fetch

- accepts only ``http`` and ``https``;
- resolves the host once, refuses it when any address it resolves to is loopback, private, link-local,
  multicast, unspecified or reserved (IPv4 and IPv6; an IPv6 address that carries an IPv4 one, such
  as ``::ffff:127.0.0.1``, is judged by the IPv4 address) unless ``allow_private`` is set, and then
  connects to that checked address: the request goes to the IP, with the original ``Host`` header and,
  for https, the original name as TLS SNI and for certificate checking (httpx's ``sni_hostname``
  request extension). A DNS answer that changes between the check and the connection (DNS rebinding)
  therefore cannot move the request anywhere unchecked;
- follows at most ``max_redirects`` redirects itself, checking every hop the same way;
- waits ``timeout_seconds`` to connect and for each read, and gives up on the whole fetch after
  ``deadline_seconds`` (a server that trickles a byte a second never trips a read timeout);
- streams the body and stops at ``max_bytes`` (after decompression, so a compressed bomb stops too).

A fetch is a GET unless a :class:`FetchRequest` says otherwise (the workflow HTTP node sends any method,
headers and a body). A 303, or a 301/302 after a POST, continues as a GET without the body, as browsers
do; 307 and 308 repeat the method and body. The caller cannot set ``Host``: the request goes to the
checked address under the URL's own host name.

:func:`open_event_stream` is the same fetch for an answer that stays open (a server-sent event stream):
the same checks and redirects, then the events one at a time, each at most a bounded size, for at most
``deadline_seconds`` in all.

Failures are domain errors (``zhiku.errors``) with a stable code: ``url_invalid``, ``url_private_address``,
``url_timeout``, ``url_too_large``, ``url_too_many_redirects``, ``url_http_error`` (``detail.status``),
``url_unreachable``, and for an event stream ``url_not_event_stream``. Those that may pass on their own
(timeouts, a server error, a refused connection) carry a 5xx status, so the job queue retries them; the
rest are 4xx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from email.message import Message
from typing import Any

import httpx

from zhiku import __version__, sse
from zhiku.config import Settings
from zhiku.errors import Forbidden, InvalidInput, PayloadTooLarge, UpstreamError, UpstreamUnavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address the host resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]

USER_AGENT = f"Zhiku/{__version__} (knowledge-base import)"
MAX_URL_CHARS = 2048
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    max_bytes: int = 10 * 1024 * 1024
    timeout_seconds: float = 10.0  # to connect, and for each read
    deadline_seconds: float = 60.0  # the whole fetch, redirects included
    max_redirects: int = 5
    user_agent: str = USER_AGENT

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FetchPolicy:
        values = dict(allow_private=settings.allow_private_urls, max_bytes=settings.fetch_max_bytes,
                      timeout_seconds=settings.fetch_timeout_seconds,
                      deadline_seconds=settings.fetch_deadline_seconds)
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class FetchRequest:
    """What to send instead of a plain GET: method, extra headers (over the defaults) and a body."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


GET = FetchRequest()
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class FetchedPage:
    url: str  # as asked for
    final_url: str  # after redirects
    status: int
    content_type: str  # the media type, lower case, without parameters; "" when none was sent
    charset: str | None  # from the Content-Type header
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # the answer's, names lower case


def parse_url(url: str) -> httpx.URL:
    """``url`` as an http(s) URL with a host, or ``url_invalid``."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("the URL is empty", code="url_invalid")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"the URL is {len(url)} characters long; at most {MAX_URL_CHARS}", code="url_invalid")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidInput(f"{url!r} is not a valid URL ({exc})", code="url_invalid") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidInput(f"only http and https URLs can be fetched, not {parsed.scheme or 'a relative URL'!r}",
                         code="url_invalid")
    if not parsed.host:
        raise InvalidInput(f"{url!r} has no host", code="url_invalid")
    return parsed


def address_refusal(address: str) -> str | None:
    """Why ``address`` may not be fetched without ``allow_private``, or None when it is public."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return f"{address!r} is not an IP address"
    for candidate in _addresses_within(ip):
        for test, label in (("is_loopback", "loopback"), ("is_private", "private"),
                            ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                            ("is_unspecified", "unspecified"), ("is_reserved", "reserved"),
                            ("is_site_local", "site-local")):
            if getattr(candidate, test, False):
                return f"{candidate} is a {label} address"
        if not candidate.is_global:
            return f"{candidate} is not a public address"
    return None


def _addresses_within(ip: IPAddress) -> list[IPAddress]:
    """The address itself and any IPv4 address it carries (mapped, NAT64, 6to4, Teredo)."""
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            found.append(ip.ipv4_mapped)
        if ip in _NAT64:
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            found.append(ip.sixtofour)
        if ip.teredo is not None:
            found.extend(ip.teredo)
    # A mapped public address (::ffff:8.8.8.8) is private by IPv6's own table; the IPv4 address decides.
    return found[1:] if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None else found


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


async def checked_addresses(url: httpx.URL, policy: FetchPolicy, resolver: Resolver) -> list[str]:
    """The addresses ``url``'s host resolves to, every one of them allowed by ``policy``."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await resolver(host.strip("[]"), port)
    except (OSError, UnicodeError) as exc:
        raise UpstreamUnavailable(f"the host {url.host!r} could not be resolved ({exc})",
                                  code="url_unreachable") from None
    if not addresses:
        raise UpstreamUnavailable(f"the host {url.host!r} has no address", code="url_unreachable")
    if not policy.allow_private:
        for address in addresses:
            reason = address_refusal(address)
            if reason:
                raise Forbidden(
                    f"{url.host} resolves to {address}, which may not be fetched: {reason} "
                    "(set ZHIKU_ALLOW_PRIVATE_URLS=1 to allow private addresses)",
                    code="url_private_address", detail={"host": url.host, "address": address})
    return addresses


async def fetch(url: str, policy: FetchPolicy, *, resolver: Resolver = system_resolver,
                transport: httpx.AsyncBaseTransport | None = None, request: FetchRequest = GET) -> FetchedPage:
    """GET ``url`` under ``policy`` (or send ``request``). ``resolver`` and ``transport`` are for tests (an
    injected DNS, or ``httpx.MockTransport``); by default the system resolver and a real connection are used."""
    first = parse_url(url)
    try:
        async with asyncio.timeout(policy.deadline_seconds):
            async with _followed(first, policy, resolver, transport, request) as (final, response):
                return replace(await _read(final, response, policy), url=str(first))
    except TimeoutError:
        raise UpstreamUnavailable(f"{url} did not finish loading within {policy.deadline_seconds:g} seconds",
                                  code="url_timeout", status=504) from None


@asynccontextmanager
async def _followed(url: httpx.URL, policy: FetchPolicy, resolver: Resolver,
                    transport: httpx.AsyncBaseTransport | None,
                    request: FetchRequest) -> AsyncIterator[tuple[httpx.URL, httpx.Response]]:
    """The answer that is not a redirect, open for reading, and its URL; every hop is checked like the first."""
    asked = str(url)
    for _hop in range(policy.max_redirects + 1):
        addresses = await checked_addresses(url, policy, resolver)
        async with _sent(url, addresses, policy, transport, request) as response:
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                yield url, response
                return
        url = parse_url(str(url.join(location)))
        if response.status_code == 303 or (response.status_code in (301, 302) and request.method == "POST"):
            request = replace(request, method="GET", body=None)
    raise InvalidInput(f"{asked} redirects more than {policy.max_redirects} times", code="url_too_many_redirects",
                       status=422, detail={"limit": policy.max_redirects})


@asynccontextmanager
async def _sent(url: httpx.URL, addresses: list[str], policy: FetchPolicy,
                transport: httpx.AsyncBaseTransport | None, sent: FetchRequest) -> AsyncIterator[httpx.Response]:
    """One request to the first address that answers; its answer, open for reading."""
    headers = {"User-Agent": policy.user_agent, "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.8"}
    lower = {k.lower(): k for k in headers}
    for name, value in sent.headers:
        if name.lower() not in _HOP_HEADERS:
            headers.pop(lower.pop(name.lower(), ""), None)
            headers[name] = value
    headers["Host"] = url.netloc.decode("ascii")
    timeout = httpx.Timeout(policy.timeout_seconds)
    last_error: Exception | None = None
    # A fresh client per hop: a pooled connection is never reused for another host name.
    async with httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False,
                                 trust_env=False) as client:
        for address in addresses:
            pinned = url.copy_with(host=address)
            request = client.build_request(sent.method, pinned, headers=headers, content=sent.body,
                                           extensions={"sni_hostname": url.raw_host.decode("ascii")})
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last_error = exc  # try the host's next address
                continue
            except httpx.TimeoutException:
                raise UpstreamUnavailable(f"{url} did not answer within {policy.timeout_seconds:g} seconds",
                                          code="url_timeout", status=504) from None
            except httpx.HTTPError as exc:
                raise _transport_error(url, exc) from None
            try:
                yield response
            finally:
                await response.aclose()
            return
    raise UpstreamUnavailable(f"{url} could not be reached ({last_error})", code="url_unreachable")


def _refuse_error_status(url: httpx.URL, response: httpx.Response) -> None:
    if response.status_code >= 400:
        retryable = response.status_code >= 500 or response.status_code == 429
        raise UpstreamError(f"{url} answered HTTP {response.status_code}", code="url_http_error",
                            status=502 if retryable else 422, detail={"status": response.status_code})


async def _read(url: httpx.URL, response: httpx.Response, policy: FetchPolicy) -> FetchedPage:
    _refuse_error_status(url, response)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise _too_large(url, policy)
    body = bytearray()
    try:
        async for block in response.aiter_bytes():
            body += block
            if len(body) > policy.max_bytes:
                raise _too_large(url, policy)
    except httpx.TimeoutException:
        raise UpstreamUnavailable(f"{url} stopped sending for {policy.timeout_seconds:g} seconds",
                                  code="url_timeout", status=504) from None
    except httpx.HTTPError as exc:
        raise _transport_error(url, exc) from None
    media_type, charset = _content_type(response.headers.get("content-type", ""))
    return FetchedPage(url=str(url), final_url=str(url), status=response.status_code, content_type=media_type,
                       charset=charset, body=bytes(body), headers={k.lower(): v for k, v in response.headers.items()})


@dataclass(frozen=True)
class StreamEvent:
    name: str  # the event's ``event`` field; "message" when it names none, as the SSE standard says
    data: bytes  # its ``data`` lines, joined


class EventStream:
    """An open ``text/event-stream`` answer: ``async for event in stream`` reads its events as they come
    (comments and keep-alives without data are skipped). ``url`` is where it was answered from, after
    redirects: what a relative URL in an event is relative to."""

    def __init__(self, url: httpx.URL, response: httpx.Response, policy: FetchPolicy, max_event_bytes: int,
                 deadline: float) -> None:
        self.url = str(url)
        self._chunks = response.aiter_bytes()
        self._splitter = sse.EventSplitter()
        self._ready: deque[bytes] = deque()
        self._ended = False
        self._policy = policy
        self._max_event_bytes = max_event_bytes
        self._deadline = deadline  # the event loop's clock

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        while True:
            while self._ready:
                block = self._ready.popleft()
                data = sse.event_data(block)
                if data is not None:
                    return StreamEvent(name=sse.event_name(block) or "message", data=data)
            if self._ended:
                raise StopAsyncIteration
            await self._read_more()

    async def _read_more(self) -> None:
        try:
            if asyncio.get_running_loop().time() >= self._deadline:
                raise TimeoutError  # a stream that never pauses never gets cancelled by the timeout below
            async with asyncio.timeout_at(self._deadline):
                chunk = await anext(self._chunks, None)
        except TimeoutError:
            raise UpstreamUnavailable(f"the event stream {self.url} was open for {self._policy.deadline_seconds:g} "
                                      "seconds, its limit", code="url_timeout", status=504) from None
        except httpx.TimeoutException:
            raise UpstreamUnavailable(f"{self.url} stopped sending for {self._policy.timeout_seconds:g} seconds",
                                      code="url_timeout", status=504) from None
        except httpx.HTTPError as exc:
            raise _transport_error(httpx.URL(self.url), exc) from None
        if chunk is None:
            self._ended = True
            blocks = [rest] if (rest := self._splitter.rest()) else []
        else:
            blocks = self._splitter.feed(chunk)
        if self._splitter.pending() > self._max_event_bytes or any(len(b) > self._max_event_bytes for b in blocks):
            raise PayloadTooLarge(f"an event from {self.url} is larger than the limit of {self._max_event_bytes} "
                                  "bytes", code="url_too_large", detail={"limit": self._max_event_bytes})
        self._ready.extend(blocks)


@asynccontextmanager
async def open_event_stream(url: str, policy: FetchPolicy, *, headers: tuple[tuple[str, str], ...] = (),
                            max_event_bytes: int | None = None, resolver: Resolver = system_resolver,
                            transport: httpx.AsyncBaseTransport | None = None) -> AsyncIterator[EventStream]:
    """GET ``url`` as a server-sent event stream under ``policy``, checked and redirected as :func:`fetch`
    does, and keep it open for the ``async with`` block. Reading it fails with ``url_timeout`` once it has
    been open ``policy.deadline_seconds`` (or sent nothing for ``policy.timeout_seconds``), and with
    ``url_too_large`` at an event over ``max_event_bytes`` (by default ``policy.max_bytes``). An answer
    that is not ``text/event-stream`` is ``url_not_event_stream``."""
    first = parse_url(url)
    deadline = asyncio.get_running_loop().time() + policy.deadline_seconds
    request = FetchRequest(headers=(*headers, ("Accept", "text/event-stream"), ("Cache-Control", "no-cache")))
    async with AsyncExitStack() as stack:
        try:
            async with asyncio.timeout_at(deadline):
                final, response = await stack.enter_async_context(
                    _followed(first, policy, resolver, transport, request))
        except TimeoutError:
            raise UpstreamUnavailable(f"{url} did not answer within {policy.deadline_seconds:g} seconds",
                                      code="url_timeout", status=504) from None
        _refuse_error_status(final, response)
        media_type, _charset = _content_type(response.headers.get("content-type", ""))
        if media_type != "text/event-stream":
            raise UpstreamError(f"{final} answered {media_type or 'no content type'}, not an event stream",
                                code="url_not_event_stream", status=502, detail={"content_type": media_type})
        yield EventStream(final, response, policy, max_event_bytes or policy.max_bytes, deadline)


def _content_type(header: str) -> tuple[str, str | None]:
    message = Message()
    message["content-type"] = header
    media_type = message.get_content_type() if header else ""
    charset = message.get_param("charset")
    return media_type.lower(), (charset.strip().lower() or None) if isinstance(charset, str) else None


def _too_large(url: httpx.URL, policy: FetchPolicy) -> PayloadTooLarge:
    return PayloadTooLarge(f"{url} is larger than the fetch limit of {policy.max_bytes} bytes "
                           "(ZHIKU_FETCH_MAX_BYTES)", code="url_too_large", detail={"limit": policy.max_bytes})


def _transport_error(url: httpx.URL, exc: httpx.HTTPError) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"fetching {url} failed: {type(exc).__name__}: {exc}", code="url_unreachable")
