"""schemathesis against ``/openapi.json``, in process (ASGI), on real shared-memory segments:
every documented operation, with generated valid and invalid inputs, must answer as the
document says. Three servers: open, token-protected, and one whose segment is missing (every
data endpoint then answers the documented 503)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from aurum.api.app import create_app
from api_helpers import LOCAL_URL, fake_token, local_client, shm_name, unlink_shm

_native = pytest.importorskip("aurum._native")
pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")

# Under load from other jobs a request can take a while: no deadlines, a bounded example count.
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
TOKEN = fake_token()


SEGMENT = shm_name()
# The writer only refreshes its heartbeat when it writes; these servers must not call the
# daemon down halfway through the run, so their threshold is an hour. The schemas are loaded
# at import (schemathesis' lazy from_fixture does not run under this pytest), which only reads
# /openapi.json: no segment is needed until the first case.
# Every request says Host 127.0.0.1:8000, as a local client's would: schemathesis' own
# "testserver" is not a name the API answers.
LOCAL = {"base-url": LOCAL_URL}


def load(app, **config):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": LOCAL_URL.split("//")[1]},
                                          config=schemathesis.Config.from_dict({**LOCAL, **config}))


open_api = load(create_app(SEGMENT, stale_after_s=3600))
# schemathesis sends the token itself, and leaves it out where a case is about its absence.
token_api = load(create_app(SEGMENT, token=TOKEN, stale_after_s=3600),
                 auth={"openapi": {"bearer": {"bearer": TOKEN}}})
down_api = load(create_app(shm_name()))


@pytest.fixture(scope="module", autouse=True)
def segment():
    w = _native.ShmSignalWriter(SEGMENT, capacity=64)
    for i in range(5):
        w.publish(action=("BUY", "SELL", "FLAT")[i % 3], entry=4100 + i, stop=4095 + i, targets=[4110, 4120],
                  direction=0.5, confidence=0.6, pillar_dir=[0.1] * 5, pillar_conf=[0.5] * 5,
                  reason="score +0.50; qmo: bar delta +39 of 109 lots")
    w.update_state(last=4101.2, bid=4101.1, ask=4101.3, volume=1200, instrument_id=42, source="databento",
                   feed_state="live", pillar_dir=[0.2] * 5, pillar_conf=[0.4] * 5,
                   zones=[{"price": 4099.5, "side": "B", "kind": 1, "state": 1, "strength": 0.75, "volume": 90},
                          {"price": 4104.0, "side": "A", "kind": 2, "state": 2, "strength": 0.5, "volume": 300}])
    yield SEGMENT
    w.close()
    unlink_shm(SEGMENT)


@open_api.parametrize()
@FUZZ
def test_open_api_conforms_to_its_openapi_document(case):
    case.call_and_validate()


@token_api.parametrize()
@FUZZ
def test_token_api_conforms_and_refuses_requests_without_the_token(case):
    # schemathesis' ignored_auth check also sends each request without the header and
    # expects the documented 401.
    case.call_and_validate()


@down_api.parametrize()
@FUZZ
def test_missing_segment_answers_the_documented_503(case):
    # 503 is the point here, so the two checks that treat any 5xx as a failure are off;
    # the body must still match the documented error schema.
    resp = case.call_and_validate(excluded_checks=[not_a_server_error, positive_data_acceptance])
    assert resp.status_code in (503, 422, 405), resp.text  # 405: schemathesis also tries other methods


def test_openapi_declares_the_bearer_scheme_only_when_a_token_is_set(segment):
    with local_client(create_app(segment)) as c:
        doc = c.get("/openapi.json").json()
    assert "securitySchemes" not in doc.get("components", {})
    with local_client(create_app(segment, token=TOKEN)) as c:
        doc = c.get("/openapi.json").json()
        assert c.get("/openapi.json").status_code == 200  # the contract itself is public
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    paths = doc["paths"]
    assert set(paths) == {"/api/v1/market", "/api/v1/zones", "/api/v1/signal", "/api/v1/signals", "/api/v1/health"}
    for p in paths.values():
        assert {"200", "401", "503"} <= set(p["get"]["responses"])
