"""The whole path on simulated data: ``aurum gateway --sim`` -> ``aurum run`` -> shared memory
-> ``aurum api`` -> HTTP, WebSocket, and the status page in headless Chromium (selenium with
the system chromedriver, no download). Without Chromium the page test skips, except under CI
(``$CI`` set), where it must run."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from api_helpers import LiveStack, fake_token, wait_for

pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
TOKEN = fake_token()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pytest.importorskip("aurum._native")
    s = LiveStack(tmp_path_factory.mktemp("live"), token=TOKEN)
    yield s
    s.stop()


def get(stack: LiveStack, path: str) -> tuple[int, dict]:
    assert stack.api is not None
    req = urllib.request.Request(stack.api.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_and_stream_over_a_running_daemon(stack):
    def live():
        code, h = get(stack, "/api/v1/health")
        return code == 200 and h["feed_state"] == "live" and h

    h = wait_for(live, 120, f"the daemon to go live\n{stack.logs()}", interval=0.5)
    assert h["source"] == "databento" and h["daemon_alive"] and h["segment"] == stack.shm
    _, sig = wait_for(lambda: (r := get(stack, "/api/v1/signal"))[1]["signal"] and r, 180,
                      f"a signal\n{stack.logs()}", interval=0.5)
    s = sig["signal"]
    assert s["action"] in ("BUY", "SELL", "FLAT") and s["reasons"] and set(s["pillars"]) == {
        "qmo", "imo", "gann", "astro", "cycle"}
    code, m = get(stack, "/api/v1/market")
    assert code == 200 and m["price"] and m["bid"] < m["ask"] and m["source"] == "databento"
    code, page = get(stack, "/api/v1/signals?since=0")
    assert code == 200 and page["signals"][0]["seq"] == 0 and page["missed"] == 0
    assert get(stack, "/api/v1/zones")[0] == 200  # the daemon may not fill zones yet: zero is fine

    from websockets.asyncio.client import connect

    async def two_prices() -> list[float]:
        assert stack.api is not None
        prices: list[float] = []
        async with connect(f"{stack.api.ws_url}/api/v1/stream", subprotocols=["aurum.v1", f"bearer.{TOKEN}"],
                           open_timeout=30) as ws:
            while len(set(prices)) < 2:
                m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if m["type"] == "market" and m["price"] is not None:
                    prices.append(m["price"])
        return prices

    assert len(set(asyncio.run(two_prices()))) == 2  # the market moves, and the stream says so


def _browser() -> tuple[str, str] | None:
    chrome = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    return (chrome, driver) if chrome and driver else None


def test_status_page_in_headless_chromium(stack, tmp_path: Path):
    found = _browser()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are required under CI (apt-get install chromium chromium-driver)")
        pytest.skip("chromium or chromedriver not installed (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chrome, chromedriver = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
              "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(chromedriver, log_output=str(tmp_path / "chromedriver.log")),
                              options=opts)
    assert stack.api is not None
    base = stack.api.url
    text = lambda el: driver.find_element("id", el).text  # noqa: E731
    try:
        driver.set_page_load_timeout(60)
        # A wrong token: the stream refuses it, and the page asks for one.
        driver.get(f"{base}/#token=not-{TOKEN}")
        wait_for(lambda: text("conn") == "token required", 60, "the page to ask for a token")
        assert driver.find_element("id", "auth").is_displayed()
        # The right one (a new URL, so the page loads again).
        driver.execute_script("sessionStorage.clear()")
        driver.get(f"{base}/?again=1#token={TOKEN}")
        wait_for(lambda: text("conn") == "live", 60, f"the page to connect: {text('conn')} {text('status-detail')}")
        assert TOKEN not in driver.current_url  # it left the address bar
        first = wait_for(lambda: text("price") not in ("", "—") and text("price"), 120, "a price on the page")
        wait_for(lambda: text("price") != first, 120, "the price on the page to change")
        action = wait_for(lambda: text("signal-action") in ("BUY", "SELL", "FLAT", "BUY (vetoed)", "SELL (vetoed)",
                                                             "FLAT (vetoed)") and text("signal-action"),
                          180, "a signal on the page")
        assert text("source") == "databento" and text("feed") == "live"
        assert text("signal-confidence") != "—" and text("signal-seq").startswith("#")
        for p in ("qmo", "imo", "gann", "astro", "cycle"):
            assert " / " in text(f"pillar-{p}"), p
        assert text("zone-count").isdigit()
        # One script call reads both at once (the page sets them in one handler).
        bid, ask = driver.execute_script("return [bid.textContent, ask.textContent]")
        assert float(bid) <= float(ask)
        shot = tmp_path / "status-page.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"\nstatus page screenshot: {shot} (signal {action}, price {text('price')})")
        # The browser console has no errors (CSP violations or script errors would show there).
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
