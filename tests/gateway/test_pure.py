"""Pure parts of the gateway: channel choice, pricing, limits, failure classification, DSNs, secrets, SSE."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zhiku.config import Settings
from zhiku.errors import Forbidden, QuotaExhausted, RateLimited, StartupError, Unauthorized
from zhiku.gateway.domain import AUTO_DISABLED, ChannelInfo, TokenInfo, UserInfo, parse_subnets
from zhiku.gateway.providers.base import json_loads
from zhiku.gateway.providers.failures import Failure, http_failure, parse_retry_after, transport_failure
from zhiku.gateway.relay.choice import choose_channel, cooldown_left, serving
from zhiku.gateway.relay.ledger import Ledger
from zhiku.gateway.relay.limits import RateWindow, TokenLimiter, check_client, check_model, check_token
from zhiku.gateway.relay.meter import StreamMeter
from zhiku.gateway.relay.pricing import Prices, prices_from_options, quota_for, validate_ratio_option
from zhiku.gateway.store.dsn import gateway_database_url, redact_dsn
from zhiku.gateway.store.keybox import fernet_key_from, mask_key, open_keybox
from zhiku.sse import EventSplitter, event_data, event_name


def ch(id: int, *, priority: int = 0, weight: int = 1, models: tuple[str, ...] = ("m",), status: str = "enabled",
       groups: tuple[str, ...] = ("default",)) -> ChannelInfo:
    return ChannelInfo(id=id, type="openai", name=f"c{id}", base_url="", models=models, groups=groups,
                       priority=priority, weight=weight, status=status)


# ---- channel choice ----------------------------------------------------------------------------


def test_top_priority_tier_first_then_lower_tiers_on_exclusion() -> None:
    channels = [ch(1, priority=1), ch(2, priority=5), ch(3, priority=5), ch(4, priority=0)]
    assert {choose_channel(channels, d).id for d in (0.0, 0.3, 0.6, 0.99)} == {2, 3}
    assert choose_channel(channels, 0.5, exclude={2, 3}).id == 1
    assert choose_channel(channels, 0.5, exclude={1, 2, 3}).id == 4
    assert choose_channel(channels, 0.5, exclude={1, 2, 3, 4}) is None


def test_weighted_choice_over_1000_draws() -> None:
    channels = [ch(1, weight=1), ch(2, weight=3), ch(3, weight=6), ch(9, priority=-1, weight=100)]
    rng = random.Random(20240601)
    counts = {1: 0, 2: 0, 3: 0, 9: 0}
    for _ in range(1000):
        counts[choose_channel(channels, rng.random()).id] += 1
    assert counts[9] == 0  # a lower tier never serves while the top tier can
    # expected 100 / 300 / 600; 4+ standard deviations of slack
    assert 60 <= counts[1] <= 140 and 240 <= counts[2] <= 360 and 530 <= counts[3] <= 670, counts


def test_weight_edges_and_cooldowns() -> None:
    assert choose_channel([ch(1, weight=0), ch(2, weight=2)], 0.0).id == 2  # 0 never picked beside >0
    assert {choose_channel([ch(1, weight=0), ch(2, weight=0)], d).id for d in (0.1, 0.9)} == {1, 2}
    assert choose_channel([ch(1)], 1.0).id == 1  # draw at the top edge is clamped
    channels = [ch(1, priority=9), ch(2)]
    assert choose_channel(channels, 0.5, cooling_until={1: 100.0}, now=50.0).id == 2
    assert choose_channel(channels, 0.5, cooling_until={1: 100.0}, now=100.0).id == 1
    assert cooldown_left(channels, set(), {1: 100.0, 2: 80.0}, 50.0) == 30.0
    assert cooldown_left(channels, set(), {1: 100.0}, 50.0) is None  # channel 2 is free


def test_serving_prefers_named_models_and_respects_groups_and_status() -> None:
    channels = [ch(1, models=("gpt-4o",)), ch(2, models=("*",)), ch(3, models=("gpt-4o",), status=AUTO_DISABLED),
                ch(4, models=("gpt-4o",), groups=("vip",))]
    assert [c.id for c in serving(channels, "gpt-4o", "default")] == [1]
    assert [c.id for c in serving(channels, "llama3", "default")] == [2]
    assert [c.id for c in serving(channels, "gpt-4o", "vip")] == [4]
    assert serving(channels, "llama3", "vip") == []


# ---- pricing -----------------------------------------------------------------------------------


def test_quota_as_oneapi_prices_it() -> None:
    prices = Prices(model_ratio={"gpt-4o-mini": 0.075}, completion_ratio={"gpt-4o-mini": 4.0},
                    group_ratio={"vip": 0.5}, default_model_ratio=2.0)
    # (1000 + 500 × 4) × 0.075 × 1 = 225
    assert quota_for(prices, "gpt-4o-mini", "default", 1000, 500) == 225
    assert quota_for(prices, "gpt-4o-mini", "vip", 1000, 500) == 113  # 112.5 rounded up
    assert quota_for(prices, "unknown", "default", 10, 0) == 20  # default ratio, completion ratio 1
    assert quota_for(prices, "gpt-4o-mini", "default", 1, 0) == 1  # at least 1 for paid work
    assert quota_for(prices, "gpt-4o-mini", "default", 0, 0) == 0
    free = Prices(model_ratio={"free": 0.0})
    assert quota_for(free, "free", "default", 1000, 1000) == 0


def test_ratio_options_override_defaults_and_are_validated() -> None:
    prices = prices_from_options({"ModelRatio": '{"my-model": 3}', "GroupRatio": '{"vip": 0.8}',
                                  "DefaultModelRatio": "5", "CompletionRatio": "not json"})
    assert prices.model("my-model") == 3 and prices.model("gpt-4o-mini") == 0.075  # defaults kept
    assert prices.group("vip") == 0.8 and prices.model("other") == 5
    assert validate_ratio_option("ModelRatio", '{"a": 1}') is None
    assert validate_ratio_option("ModelRatio", '{"a": "x"}') and validate_ratio_option("GroupRatio", "[1]")
    assert validate_ratio_option("DefaultModelRatio", "abc")


# ---- admission ---------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, tzinfo=UTC)
USER = UserInfo(id=1, username="u", quota=1000)


def test_token_checks() -> None:
    check_token(TokenInfo(id=1, user_id=1, name="t"), USER, NOW)
    with pytest.raises(Unauthorized, match="expired"):
        check_token(TokenInfo(id=1, user_id=1, name="t", expires_at=NOW - timedelta(seconds=1)), USER, NOW)
    with pytest.raises(Unauthorized, match="disabled"):
        check_token(TokenInfo(id=1, user_id=1, name="t", status="disabled"), USER, NOW)
    with pytest.raises(Forbidden):
        check_token(TokenInfo(id=1, user_id=1, name="t"), UserInfo(id=1, username="u", status="disabled"), NOW)
    limited = TokenInfo(id=1, user_id=1, name="t", models=frozenset({"a"}))
    check_model(limited, "a")
    with pytest.raises(Forbidden) as err:
        check_model(limited, "b")
    assert err.value.code == "model_not_allowed"


def test_subnets_v4_v6_and_mapped() -> None:
    token = TokenInfo(id=1, user_id=1, name="t", subnets=parse_subnets("10.0.0.0/8, 2001:db8::/32"))
    check_client(token, "10.1.2.3")
    check_client(token, "::ffff:10.9.9.9")
    check_client(token, "2001:db8::1")
    for refused in ("127.0.0.1", "2001:db9::1", None, "not-an-ip"):
        with pytest.raises(Forbidden):
            check_client(token, refused)
    check_client(TokenInfo(id=1, user_id=1, name="t"), None)  # no list: any client


def test_rate_window_and_limiter() -> None:
    window = RateWindow()
    window.add(100.2, 3)
    window.add(130.0, 2)
    assert window.used(130.5) == 5 and window.used(160.5) == 2 and window.used(190.0) == 0
    assert window.retry_after(131.0, limit=5, need=1) == pytest.approx(29.0)
    limiter = TokenLimiter()
    token = TokenInfo(id=7, user_id=1, name="t", rpm_limit=2, tpm_limit=100)
    limiter.admit(token, 10.0, 60)
    limiter.settle(token, 10.5, 60, 30)  # really used 30
    limiter.admit(token, 11.0, 60)  # 30 + 60 ≤ 100
    with pytest.raises(RateLimited) as err:
        limiter.admit(token, 12.0, 1)
    assert err.value.code == "rpm_limit_exceeded" and err.value.headers["Retry-After"] == "58"
    limiter.admit(token, 70.5, 10)  # the first request left the window
    with pytest.raises(RateLimited) as err:
        limiter.admit(TokenInfo(id=7, user_id=1, name="t", tpm_limit=100), 70.8, 50)  # 60 + 10 + 50 > 100
    assert err.value.code == "tpm_limit_exceeded"


def test_ledger_reserve_settle_refund() -> None:
    ledger = Ledger()
    token = TokenInfo(id=1, user_id=1, name="t", remain_quota=100)
    first = ledger.reserve(token, USER, 60)
    with pytest.raises(QuotaExhausted):
        ledger.reserve(token, USER, 50)  # 40 left while the first is in flight
    ledger.refund(first)
    second = ledger.reserve(token, USER, 50)
    ledger.settle(second, 70, channel_id=3, latency_ms=12)
    assert ledger.token_remaining(token) == 30 and ledger.user_remaining(USER) == 930
    unlimited = TokenInfo(id=2, user_id=1, name="u", unlimited_quota=True)
    assert ledger.token_remaining(unlimited) is None
    root = UserInfo(id=9, username="root", role="root", quota=0)
    ledger.reserve(unlimited, root, 10**9)  # root and unlimited tokens are never refused
    batch = ledger.take()
    assert batch.tokens[1].spent == 70 and batch.channels[3].latency_ms == 12 and batch.users[1].requests == 1


# ---- failures ----------------------------------------------------------------------------------


def test_failure_classification() -> None:
    assert http_failure(429, b"{}", "7", 0.0, "c").retryable
    assert http_failure(503, b"oops", None, 0.0, "c").retryable
    assert transport_failure("refused").retryable and transport_failure("slow", timeout=True).status == 504
    for status in (400, 401, 403, 404, 422):
        assert not http_failure(status, b"{}", None, 0.0, "c").retryable
    assert http_failure(401, b"{}", None, 0.0, "c").disable_reason()
    quota = b'{"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}}'
    assert http_failure(429, quota, None, 0.0, "c").disable_reason()
    anthropic = b'{"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}'
    assert http_failure(403, anthropic, None, 0.0, "c").disable_reason()
    assert http_failure(429, b'{"error": {"message": "Rate limit reached"}}', None, 0.0, "c").disable_reason() is None
    assert http_failure(500, b"{}", None, 0.0, "c").disable_reason() is None
    assert Failure(status=502, code="x", message="m", transport=True).disable_reason() is None
    ollama = http_failure(404, b'{"error": "model \'llama9\' not found"}', None, 0.0, "c")
    assert "llama9" in ollama.message and ollama.code == "upstream_not_found"


def test_retry_after_forms() -> None:
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", 1445412500.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412500.0) is None  # in the past
    assert parse_retry_after("999999", 0.0) == 3600.0 and parse_retry_after("soon", 0.0) is None


# ---- DSNs and secrets --------------------------------------------------------------------------


def test_dsn_forms() -> None:
    assert gateway_database_url("root:123456@tcp(localhost:3306)/oneapi?charset=utf8mb4&parseTime=True&loc=Local") \
        == "mysql+aiomysql://root:123456@localhost:3306/oneapi?charset=utf8mb4"
    assert gateway_database_url("u:p@ss@tcp(db)/one") == "mysql+aiomysql://u:p%40ss@db:3306/one?charset=utf8mb4"
    assert gateway_database_url("u:p@unix(/run/mysqld/mysqld.sock)/one").startswith("mysql+aiomysql://u:p@/one?")
    assert gateway_database_url("mysql://u:p@h/db") == "mysql+aiomysql://u:p@h/db?charset=utf8mb4"
    assert gateway_database_url("postgres://u:p@h/d") == "postgresql+asyncpg://u:p@h/d"
    assert gateway_database_url("sqlite:////var/lib/gw.db") == "sqlite+aiosqlite:////var/lib/gw.db"
    assert redact_dsn("root:topsecret@tcp(h:3306)/oneapi").count("topsecret") == 0
    with pytest.raises(StartupError):
        gateway_database_url("oracle://x/y")


def test_secret_from_setting_or_generated_file(tmp_path: Path) -> None:
    assert fernet_key_from("same") == fernet_key_from("same") != fernet_key_from("other")
    box = open_keybox(Settings(data_dir=tmp_path, secret_key="operator secret"))
    assert box.decrypt(box.encrypt("sk-abc")) == "sk-abc"
    generated = open_keybox(Settings(data_dir=tmp_path / "d", secret_key=""))
    secret_file = tmp_path / "d" / "secret.key"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    again = open_keybox(Settings(data_dir=tmp_path / "d", secret_key=""))
    assert again.decrypt(generated.encrypt("k")) == "k"
    with pytest.raises(ValueError, match="ZHIKU_SECRET_KEY is a placeholder"):  # settings refuse it in prod
        open_keybox(Settings(data_dir=tmp_path, secret_key="changeme", profile="prod"))
    with pytest.raises(StartupError):
        box.decrypt(generated.encrypt("k"))
    assert mask_key("sk-1234567890abcdef") == "sk-…cdef" and mask_key("short") == "*****"


# ---- SSE and the stream meter ------------------------------------------------------------------


def test_event_splitter_handles_any_chunking() -> None:
    stream = b'event: a\r\ndata: {"x": 1}\r\n\r\n: comment\n\ndata: [DONE]\n\n'
    for size in (1, 2, 3, 7, len(stream)):
        splitter = EventSplitter()
        blocks = [b for i in range(0, len(stream), size) for b in splitter.feed(stream[i:i + size])]
        assert [event_data(b) for b in blocks] == [b'{"x": 1}', None, b"[DONE]"], size
        assert event_name(blocks[0]) == "a"


def test_meter_forwards_events_and_notes_usage_errors_and_cuts() -> None:
    meter = StreamMeter(strip_usage_chunk=True)
    out = meter.feed(b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\ndata: {"choi')
    assert out == [b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n']
    out = meter.feed(b'ces":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
                     b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\ndata: [DONE]\n\n')
    assert len(out) == 1 and meter.finished and meter.done and meter.usage.prompt_tokens == 3  # usage chunk stripped
    assert meter.completion_text() == "Hi"
    broken = StreamMeter(strip_usage_chunk=False)
    assert broken.feed(b'data: {"choices": [\n\n') == [] and broken.broken
    errored = StreamMeter(strip_usage_chunk=False)
    assert errored.feed(b'data: {"error": {"message": "overloaded"}}\n\n') == [] and errored.error["message"]


@pytest.mark.parametrize("raw", [b'{"a":1,"b":[true,null]}', b' {"a": 1} ', b'{"a": NaN}', '{"中": "文"}'.encode(),
                                 '{"a":"x"}'.encode("utf-16"), b"\xef\xbb\xbf{\"bom\":1}", '{"s":"\\ud800"}', b"[1,2]"])
def test_json_loads_accepts_exactly_what_json_loads_does(raw: bytes | str) -> None:
    assert json.dumps(json_loads(raw)) == json.dumps(json.loads(raw))  # as text: NaN != NaN


@pytest.mark.parametrize("raw", [b'{"a":1}x', b'{"a":1} {"b":2}', b"{", b'{"a":"\xff"}', b""])
def test_json_loads_refuses_exactly_what_json_loads_does(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        json_loads(raw)


def test_meter_checks_events_lazily_and_knows_when_done_arrived() -> None:
    meter = StreamMeter(strip_usage_chunk=False)
    meter.push(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: not json\n\ndata: [DONE]\n\n')
    assert meter.received_done and not meter.done  # in hand, not yet checked
    first = meter.drain(1)
    assert first == [b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'] and not meter.broken
    assert meter.drain() == [] and meter.malformed == b"not json"  # the bad one is never forwarded
    assert not meter.done and meter.completion_text() == "a"  # nothing after a broken event counts


