"""``aurum gateway`` against clients that misbehave on purpose: it must answer each with a
clear error, never stall the other sessions, and never echo a key. A real gateway
subprocess on 127.0.0.1; the official ``databento`` client where it can play the part, our
own control classes where it refuses to send such lines."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import databento as db
import databento_dbn as dbn
import pytest
from gateway_proc import GatewayProc
from test_gateway_live_client import _raw_session, build_gc_file, fake_key

from aurum.gateway.assembly import MAX_SESSION_SYMBOLS
from aurum.gateway.control import SYMBOL_BATCH, AuthResponse, SubscriptionRequest


@pytest.fixture(scope="module")
def key() -> str:
    return fake_key()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, key: str) -> Iterator[GatewayProc]:
    data = build_gc_file(tmp_path_factory.mktemp("gw") / "gc.dbn")
    g = GatewayProc([data], "--at-end", "idle", log_path=tmp_path_factory.mktemp("gwlog") / "gateway.log",
                    env_keys=key)
    try:
        yield g
    finally:
        g.stop()


def errors_in(stream: bytes) -> list[dbn.ErrorMsg]:
    return [r for r in dbn.DBNDecoder().write_and_decode(stream) if isinstance(r, dbn.ErrorMsg)]


def test_a_key_whose_bucket_contains_a_dash_authenticates(gw: GatewayProc) -> None:
    """The CRAM bucket is the key's last 5 characters; the gateway split the auth value at its
    last '-', so a key ending in e.g. 'xy-12' could never log in."""
    dashed = fake_key()[:-5] + "xy-12"
    assert gw.admin(f"add_key {dashed}").startswith("ok key")
    live = db.Live(dashed, gateway="127.0.0.1", port=gw.port)
    try:
        live.subscribe("GLBX.MDP3", "trades", "GCZ6")  # raises BentoError if authentication fails
    finally:
        live.terminate()
        gw.admin(f"del_key {dashed}")


def test_admin_never_echoes_a_key_after_a_tab(gw: GatewayProc) -> None:
    secret = fake_key()
    replies = []
    for line in (f"add_key\t{secret}", f"nonsense\t{secret}", f"del_key\t{secret}"):
        assert gw.proc.stdin is not None
        gw.proc.stdin.write(line + "\n")
        gw.proc.stdin.flush()
        replies.append(gw.lines.get(timeout=10))
    assert replies[0].startswith("ok key db-") and replies[1] == "error unknown command 'nonsense'"
    assert all(secret not in r and secret[8:] not in r for r in replies), replies
    assert secret not in gw.log()


def test_a_huge_control_line_after_start_is_an_invalid_subscription(gw: GatewayProc, key: str) -> None:
    """Before, the control task died silently: later subscriptions were ignored, no error."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        from aurum.gateway.control import AuthRequest, Challenge

        f = s.makefile("rb")
        f.readline()
        req = AuthRequest.for_key(Challenge.parse(f.readline()).cram, key, "GLBX.MDP3", client="aurum-tests")
        s.sendall(bytes(req))
        assert AuthResponse.parse(f.readline()).success
        s.sendall(b"schema=trades|stype_in=raw_symbol|symbols=GCZ6|id=0|is_last=1\nstart_session=0\n")
        time.sleep(0.3)

        def send_huge() -> None:
            with contextlib.suppress(OSError):  # the gateway stops reading at its line limit
                s.sendall(b"x" * (2 << 20) + b"\n")

        sender = threading.Thread(target=send_huge)
        sender.start()
        rest = bytearray()
        with contextlib.suppress(OSError):  # its close may come as a reset
            while chunk := s.recv(1 << 16):
                rest += chunk
        sender.join()
    errs = errors_in(bytes(rest))
    assert errs and errs[-1].code == dbn.ErrorCode.INVALID_SUBSCRIPTION and "control line over" in errs[-1].err


def test_a_session_naming_too_many_symbols_is_refused(gw: GatewayProc, key: str) -> None:
    """Lines are joined in linear time within a per-session budget of symbols."""
    lines = [bytes(r).decode() for r in SubscriptionRequest.batched(
        "trades", [f"S{i}" for i in range(MAX_SESSION_SYMBOLS + SYMBOL_BATCH)], stype_in="raw_symbol", id=1)]
    response, rest = _raw_session(gw.port, key, [*lines, "start_session=0\n"])
    assert AuthResponse.parse(response).success
    errs = errors_in(rest)
    assert len(errs) == 1 and errs[0].code == dbn.ErrorCode.INVALID_SUBSCRIPTION
    assert f"more than {MAX_SESSION_SYMBOLS} symbols in one session" in errs[0].err
    # ...and the gateway still serves the next client.
    assert run_one(gw.port, key) > 0


def run_one(port: int, key: str) -> int:
    live = db.Live(key, gateway="127.0.0.1", port=port)
    got: list[object] = []
    live.add_callback(got.append)
    live.subscribe("GLBX.MDP3", "trades", "GCZ6", start=0)
    live.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(isinstance(r, dbn.TradeMsg) for r in got):
        time.sleep(0.05)
    live.terminate()
    return sum(isinstance(r, dbn.TradeMsg) for r in got)



def test_a_symbol_too_long_for_dbn_fails_to_resolve_and_the_session_goes_on(gw: GatewayProc, key: str) -> None:
    """A 90-character (zero-padded) instrument id used to resolve, then break the symbol
    mapping record: ErrorMsg 6, internal error. Now it is a symbol that does not resolve."""
    long_id = "0" * 88 + "42"
    from aurum.gateway.control import AuthRequest, Challenge

    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(bytes(AuthRequest.for_key(Challenge.parse(f.readline()).cram, key, "GLBX.MDP3", client="aurum-tests")))
        assert AuthResponse.parse(f.readline()).success
        s.sendall(f"schema=trades|stype_in=instrument_id|symbols={long_id},42|id=1|is_last=1\nstart_session=0\n".encode())
        dec, recs = dbn.DBNDecoder(), []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(isinstance(r, dbn.SystemMsg) for r in recs):
            dec.write(f.read1(1 << 16))
            recs += dec.decode()
    errs = [r for r in recs if isinstance(r, dbn.ErrorMsg)]
    assert [e.code for e in errs] == [dbn.ErrorCode.SYMBOL_RESOLUTION_FAILED] and "longer than 70 bytes" in errs[0].err
    assert any(isinstance(r, dbn.SymbolMappingMsg) for r in recs)  # the other symbol resolved
