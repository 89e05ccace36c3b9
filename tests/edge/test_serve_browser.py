"""The live view in a real browser: headless Chromium opens the page served from a recorded video.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Without them the
test skips with the reason, except where LOOKALIKE_REQUIRE_BROWSER=1 (CI), where it fails.
The screenshot goes to reports/live_view.png (or $LOOKALIKE_REPORTS).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks.serve_client import served
from benchmarks.webdriver import Browser, find_browser
from shared_paths import ROOT


@pytest.fixture(scope="module")
def browser():
    found = find_browser()
    if found is None:
        message = "no chromium + chromedriver here (Debian: apt install chromium chromium-driver)"
        if os.environ.get("LOOKALIKE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    chromium = Browser(*found)
    yield chromium
    chromium.close()


def _until(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    value = check()
    while not value:
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.1)
        value = check()
    return value


def test_page_shows_video_and_lookalike_in_chromium(browser, tiny_models, face_video):
    labels = (tiny_models / "labels.txt").read_text().split()
    names = [label.replace("_", " ") for label in labels]
    with served([face_video, "--models", tiny_models, "--token", "browser-test-token"]) as server:
        browser.open(server.page_url)
        # The MJPEG stream is decoded by the <img>: its size is the frame's, once frames arrive.
        size = _until(lambda: browser.run("const v = document.getElementById('video');"
                                          "return v.naturalWidth > 0 ? [v.naturalWidth, v.naturalHeight] : null;"))
        assert size == [640, 480]
        name = _until(lambda: browser.run("const n = document.querySelector('.lookalike');"
                                          "return n ? n.textContent : null;"))
        assert name in names
        latest = server.latest()
        assert latest["viewers"] >= 1  # the page's stream is a viewer the server counts
        # Frames keep arriving: the server sends the page more JPEGs over time.
        server.wait_for(lambda r: r["jpegs_sent"] >= latest["jpegs_sent"] + 5)
        speed = _until(lambda: browser.run("return document.getElementById('speed').textContent;"))
        assert "FPS" in speed
        reports = Path(os.environ.get("LOOKALIKE_REPORTS", ROOT / "reports"))
        reports.mkdir(parents=True, exist_ok=True)
        shot = browser.screenshot(reports / "live_view.png")
        assert shot.stat().st_size > 10_000
        # Without the token the page's requests are refused.
        browser.open(server.base + "/api/latest")
        assert "token" in browser.run("return document.body.innerText;")
