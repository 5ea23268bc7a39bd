"""Gateway control messages (aurum.gateway.control): round trips, malformed lines, and agreement
with the official client's own parser (databento.live.gateway) in both directions."""

from __future__ import annotations

import secrets
import string

import pytest
from databento.live import gateway as official
from hypothesis import given
from hypothesis import strategies as st

from aurum.gateway import faults, records
from aurum.gateway.assembly import SubscriptionAssembler
from aurum.gateway.control import (
    AuthRequest, AuthResponse, Challenge, ControlError, Greeting, SessionStart, SubscriptionRequest,
    cram_response, mask_key, parse_client_line, parse_server_line, split_line,
)


def fake_key() -> str:
    """A made-up key in the real shape: 'db-' + 29 random letters/digits (32 chars)."""
    return "db-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(29))


# --- server -> client lines: what the official Python client must accept -----------------------


def test_greeting_and_challenge_parse_in_the_official_client() -> None:
    g = Greeting("aurum-0.1")
    c = Challenge.random()
    assert len(c.cram) == 32 and c.cram.isalpha()
    assert official.Greeting.parse(g.to_line()).lsg_version == "aurum-0.1"
    assert official.ChallengeRequest.parse(c.to_line()).cram == c.cram
    assert Greeting.parse(g.to_line()) == g and Challenge.parse(bytes(c)) == c
    # The official client tries the classes in order; ours must land on the right one.
    assert isinstance(official.parse_gateway_message(g.to_line()), official.Greeting)
    assert isinstance(official.parse_gateway_message(c.to_line()), official.ChallengeRequest)


def test_auth_responses_parse_in_the_official_client() -> None:
    ok = AuthResponse(True, session_id="17")
    assert ok.to_line() == "success=1|session_id=17\n"
    parsed = official.parse_gateway_message(ok.to_line())
    assert isinstance(parsed, official.AuthenticationResponse)
    assert (parsed.success, parsed.session_id) == ("1", "17")
    bad = AuthResponse(False, error="Authentication failed.")
    assert bad.to_line() == "success=0|error=Authentication failed.\n"
    parsed = official.AuthenticationResponse.parse(bad.to_line())
    assert (parsed.success, parsed.error) == ("0", "Authentication failed.")
    assert AuthResponse.parse(ok.to_line()) == ok and AuthResponse.parse(bad.to_line()) == bad


def test_server_line_dispatch() -> None:
    assert parse_server_line("lsg_version=1.2\n") == Greeting("1.2")
    assert parse_server_line("cram=abc\n") == Challenge("abc")
    assert parse_server_line("success=1|session_id=5\n") == AuthResponse(True, "5")


# --- client -> server lines: what the official clients send --------------------------------------


def test_auth_request_from_the_official_client() -> None:
    key = fake_key()
    challenge = Challenge.random().cram
    from databento.common import cram

    line = str(official.AuthenticationRequest(
        auth=cram.get_challenge_response(challenge, key), dataset="GLBX.MDP3", ts_out="1",
        compression="zstd", heartbeat_interval_s=5, slow_reader_behavior="warn",
    ))
    req = AuthRequest.parse(line)
    assert req.verify(challenge, key)
    assert not req.verify(challenge, fake_key())
    assert req.bucket == key[-5:]
    assert (req.dataset, req.ts_out, req.compression, req.heartbeat_interval_s, req.slow_reader_behavior) == (
        "GLBX.MDP3", True, "zstd", 5, "warn")
    assert req.client is not None and req.client.startswith("Databento/")
    assert cram_response(challenge, key) == req.auth


def test_auth_request_is_an_unordered_key_set_with_unknown_keys_ignored() -> None:
    key = fake_key()
    auth = cram_response("xyz", key)
    # Rust's order, plus a key nobody knows about.
    line = f"auth={auth}|dataset=GLBX.MDP3|encoding=dbn|compression=none|ts_out=0|client=Databento/0.55 Rust|future_key=7\n"
    req = AuthRequest.parse(line)
    assert req.verify("xyz", key)
    assert req.heartbeat_interval_s is None  # absent -> the gateway's default
    assert req.extra == {"future_key": "7"}
    # Python < 0.74 sent `drop` for skip.
    assert AuthRequest.parse(f"auth={auth}|dataset=X|slow_reader_behavior=drop\n").slow_reader_behavior == "skip"


def test_auth_request_round_trip() -> None:
    req = AuthRequest.for_key("ch", fake_key(), "GLBX.MDP3", ts_out=True, compression="zstd", heartbeat_interval_s=10)
    assert AuthRequest.parse(req.to_line()) == req
    assert official.AuthenticationRequest.parse(req.to_line()).dataset == "GLBX.MDP3"


@pytest.mark.parametrize("line, problem", [
    ("dataset=GLBX.MDP3|encoding=dbn\n", "no auth"),
    ("auth=abc|dataset=GLBX.MDP3\n", "<hash>-<bucket>"),
    ("auth=a-bcdef|dataset=GLBX.MDP3|encoding=csv\n", "encoding"),
    ("auth=a-bcdef|dataset=GLBX.MDP3|compression=lz4\n", "compression"),
    ("auth=a-bcdef|dataset=GLBX.MDP3|ts_out=yes\n", "ts_out"),
    ("auth=a-bcdef|dataset=GLBX.MDP3|heartbeat_interval_s=ten\n", "heartbeat_interval_s"),
    ("auth=a-bcdef|dataset=GLBX.MDP3|slow_reader_behavior=panic\n", "slow_reader_behavior"),
    ("auth=a-bcdef\n", "no dataset"),
])
def test_malformed_auth_requests(line: str, problem: str) -> None:
    with pytest.raises(ControlError, match=problem):
        AuthRequest.parse(line)


def test_subscription_lines_from_the_official_client() -> None:
    from databento.live.protocol import DatabentoLiveProtocol

    sent: list[bytes] = []

    class FakeTransport:
        def writelines(self, lines: object) -> None:
            sent.extend(lines)  # type: ignore[arg-type]

    proto = DatabentoLiveProtocol.__new__(DatabentoLiveProtocol)
    proto._DatabentoLiveProtocol__transport = FakeTransport()  # type: ignore[attr-defined]
    symbols = [f"GC{i:04d}" for i in range(1203)]
    proto.subscribe("mbo", symbols, "raw_symbol", start=1_700_000_000_000_000_000, subscription_id=3)
    assert len(sent) == 3
    parsed = [SubscriptionRequest.parse(b) for b in sent]
    assert [len(p.symbols) for p in parsed] == [500, 500, 203]
    assert [p.is_last for p in parsed] == [False, False, True]
    assert {p.id for p in parsed} == {3}
    asm = SubscriptionAssembler()
    assert asm.add(parsed[0]) is None and asm.add(parsed[1]) is None and asm.open_ids == [3]
    joined = asm.add(parsed[2])
    assert joined is not None and joined.symbols == tuple(symbols) and joined.is_last and asm.open_ids == []
    assert joined.start == 1_700_000_000_000_000_000 and joined.schema == "mbo"
    # ...and ours serialise the way the official client does.
    ours = SubscriptionRequest.batched("mbo", symbols, start=1_700_000_000_000_000_000, id=3)
    assert [bytes(o) for o in ours] == sent


def test_subscription_from_rust_with_defaults_and_snapshot() -> None:
    req = SubscriptionRequest.parse("schema=mbo|stype_in=instrument_id|symbols=1234,5678,90|snapshot=1|id=5|is_last=1\n")
    assert req.symbols == ("1234", "5678", "90") and req.snapshot and req.id == 5 and req.start is None
    bare = SubscriptionRequest.parse("schema=trades|symbols=GCZ6\n")
    assert bare.stype_in == "raw_symbol" and bare.is_last and bare.id is None and not bare.snapshot


@pytest.mark.parametrize("line, problem", [
    ("schema=mbo|stype_in=raw_symbol|snapshot=0\n", "no symbols"),
    ("schema=mbo|symbols=\n", "empty symbols"),
    ("symbols=GCZ6\n", "no schema"),
    ("schema=mbo|symbols=GCZ6|start=soon\n", "start"),
    ("schema=mbo|symbols=GCZ6|start=-5\n", "start"),
    ("schema=mbo|symbols=GCZ6|snapshot=2\n", "snapshot"),
    ("schema=mbo|symbols=GCZ6|id=x\n", "id"),
    ("schema=mbo|symbols=" + ",".join(["A"] * 501) + "\n", "at most 500"),
])
def test_malformed_subscriptions(line: str, problem: str) -> None:
    with pytest.raises(ControlError, match=problem):
        SubscriptionRequest.parse(line)


def test_session_start_both_forms() -> None:
    assert SessionStart.parse("start_session=0\n") == SessionStart("0")
    assert SessionStart.parse("start_session\n") == SessionStart("")
    assert bytes(SessionStart()) == bytes(official.SessionStart())
    assert isinstance(parse_client_line("start_session\n"), SessionStart)
    assert isinstance(parse_client_line("auth=x-abcde|dataset=D\n"), AuthRequest)
    assert isinstance(parse_client_line("schema=mbo|symbols=A\n"), SubscriptionRequest)


@pytest.mark.parametrize("line, problem", [
    ("success=1|session_id=5", "newline"),
    ("success=1|session_id=5|\n", "empty key"),
    ("\n", "empty"),
    (b"cram=\xff\xfe\n", "UTF-8"),
    ("a=1|a=2\n", "repeats"),
])
def test_malformed_lines(line: str | bytes, problem: str) -> None:
    with pytest.raises(ControlError, match=problem):
        split_line(line)


def test_strict_server_side_parsing() -> None:
    with pytest.raises(ControlError, match="unexpected keys"):
        Greeting.parse("lsg_version=1|extra=2\n")
    with pytest.raises(ControlError, match="expected 0 or 1"):
        AuthResponse.parse("success=yes\n")
    with pytest.raises(ControlError, match="unrecognised"):
        parse_client_line("hello=world\n")
    with pytest.raises(ControlError, match="separator"):
        AuthResponse(False, error="a|b").to_line()


symbol_text = st.text(alphabet=string.ascii_letters + string.digits + ".-_:", min_size=1, max_size=12)


@given(
    schema=st.sampled_from(sorted(records.SCHEMA_RTYPES)),
    stype_in=st.sampled_from(["raw_symbol", "instrument_id", "parent", "continuous"]),
    symbols=st.lists(symbol_text, min_size=1, max_size=30),
    start=st.none() | st.integers(0, 2**63),
    snapshot=st.booleans(),
    sub_id=st.none() | st.integers(0, 10**6),
    is_last=st.booleans(),
)
def test_subscription_round_trip_and_official_parse(
    schema: str, stype_in: str, symbols: list[str], start: int | None, snapshot: bool, sub_id: int | None,
    is_last: bool,
) -> None:
    req = SubscriptionRequest(schema, tuple(symbols), stype_in, start, snapshot, sub_id, is_last)
    line = req.to_line()
    assert SubscriptionRequest.parse(line) == req
    theirs = official.SubscriptionRequest.parse(line)
    assert theirs.symbols == ",".join(symbols) and str(theirs.schema) == schema


@given(challenge=st.text(alphabet=string.ascii_letters, min_size=1, max_size=40))
def test_cram_matches_the_official_client(challenge: str) -> None:
    from databento.common import cram

    key = fake_key()
    assert cram_response(challenge, key) == cram.get_challenge_response(challenge, key)


def test_mask_key_hides_all_but_eight_characters() -> None:
    key = fake_key()
    assert mask_key(key) == key[:8] + "***"
    assert key[8:] not in mask_key(key)


def test_fault_specs() -> None:
    plan = faults.FaultPlan.parse(["cut@100", "stall=2.5@10,garbage=16@20", "error=6@30", "throttle=5000", "close_after_bytes=99"])
    assert [str(f) for f in plan.record_faults] == ["stall=2.5@10", "garbage=16@20", "error=6@30", "cut@100"]
    assert plan.throttle_bps == 5000 and plan.close_after_bytes == 99
    for bad in ("explode", "stall@3", "error=300@1", "throttle=5@1", "cut@x", "stall=-1@2"):
        with pytest.raises(faults.FaultSpecError):
            faults.FaultPlan.parse([bad])


def test_symbol_resolution_rules() -> None:
    from aurum.gateway.sources import Instrument, SymbolTable

    jan_2029 = 1_861_920_000_000_000_000  # 2029-01-01 UTC
    table = SymbolTable({
        1: Instrument(1, "GCZ9"),  # Dec 2029
        2: Instrument(2, "GCG0"),  # Feb 2030: the year digit rolls into the next decade
        3: Instrument(3, "GCJ9"),  # Apr 2029
        4: Instrument(4, "GCZ9-GCG0"),  # a spread: in GC.FUT, never a continuous front
        5: Instrument(5, "SIH9"),
    }, jan_2029)
    assert table.resolve("continuous", "GC.c.0") == [3]
    assert table.resolve("continuous", "GC.c.1") == [1]
    assert table.resolve("continuous", "GC.c.2") == [2]
    assert isinstance(table.resolve("continuous", "GC.c.3"), str)
    assert isinstance(table.resolve("continuous", "GC.v.0"), str)  # only the calendar rule
    assert table.resolve("parent", "GC.FUT") == [1, 2, 3, 4]
    assert isinstance(table.resolve("parent", "GC.OPT"), str)
    assert table.resolve("raw_symbol", "SIH9") == [5]
    assert isinstance(table.resolve("raw_symbol", "GCZ8"), str)
    assert table.resolve("instrument_id", "4") == [4]
    assert isinstance(table.resolve("instrument_id", "44"), str)
    assert table.resolve("raw_symbol", "ALL_SYMBOLS") == [1, 2, 3, 4, 5]
    # A definition's expiration outranks the symbol's month.
    with_defs = SymbolTable({1: Instrument(1, "GCZ9", expiration=10), 3: Instrument(3, "GCJ9", expiration=20)}, jan_2029)
    assert with_defs.resolve("continuous", "GC.c.0") == [1]


def test_subscription_lines_join_in_linear_time_within_a_symbol_budget() -> None:
    """Joining tuples line by line was quadratic (2,000 lines: 7 s on the event loop); a
    session may name at most MAX_SESSION_SYMBOLS symbols; chunks must agree."""
    asm = SubscriptionAssembler(max_symbols=2_000 * 50)
    lines = [SubscriptionRequest("mbo", tuple(f"S{k * 50 + i}" for i in range(50)), "raw_symbol", None, False, 1,
                                 k == 1_999) for k in range(2_000)]
    out = [asm.add(ln) for ln in lines]
    assert out[:-1] == [None] * 1_999 and out[-1] is not None and len(out[-1].symbols) == 100_000
    with pytest.raises(ControlError, match="more than 100000 symbols in one session"):
        asm.add(SubscriptionRequest("mbo", ("X",), "raw_symbol", None, False, 2, True))
    other = SubscriptionAssembler()
    other.add(SubscriptionRequest("mbo", ("A",), "raw_symbol", None, False, 7, False))
    with pytest.raises(ControlError, match="chunks of subscription 7 disagree"):
        other.add(SubscriptionRequest("trades", ("B",), "raw_symbol", None, False, 7, True))
