"""``python -m edge --serve``: the live view's endpoints, its token, its errors, its viewers."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.overlay import CharacterPictures
from edge.serve import LiveView, ServeError, ServeOptions, check_access
from edge.sources import Frame, FrameSource, SourceError
from edge_helpers import one_error_line
from benchmarks.serve_client import Viewer, mjpeg_frames, served
from serve_helpers import drawing_video
from shared_paths import ROOT


@pytest.fixture(scope="module")
def drawing_clip(tiny_models: Path, tmp_path_factory) -> Path:
    return drawing_video(tiny_models, tmp_path_factory.mktemp("clip") / "drawing.mp4")


def serve_args(models: Path, clip: Path, *extra) -> list:
    return [clip, "--models", models, "--full-frame", *extra]


def test_latest_face_is_the_json_record_plus_what_the_page_shows():
    from edge.matcher import Lookalike, Ranked
    from edge.overlay import display_name
    from edge.pipeline import FaceResult
    from edge.records import face_record
    from edge.serve import face_summary

    top = [Ranked("teacher", 0.561234, "teacher/a.png"), Ranked("white_hair_person", 0.3)]
    face = FaceResult((np.int64(10), 20, 30, 40), 7,
                      Lookalike(top, top[::-1], top, "gallery", ["glasses", "white_hair"], ["glasses", "white_hair"],
                                {"glasses": 0.9}), True, None)
    record, summary = face_record(face), face_summary(face)
    assert {k: v for k, v in summary.items() if k in record and k != "top"} == {k: v for k, v in record.items() if k != "top"}
    assert [{k: t[k] for k in ("label", "score")} for t in summary["top"]] == record["top"]
    assert [t["name"] for t in summary["top"]] == [display_name("teacher"), display_name("white_hair_person")]
    assert summary["lookalike"] == "teacher" and summary["name"] == display_name("teacher")
    assert summary["why"] == ["glasses", "white_hair"] and summary["why_text"] == "glasses, grey hair"
    assert summary["box"] == [10, 20, 30, 40] and json.loads(json.dumps(summary)) == summary


def test_page_stream_and_latest_result(tiny_models, drawing_clip):
    labels = (tiny_models / "labels.txt").read_text().split()
    with served(serve_args(tiny_models, drawing_clip)) as server:
        assert server.base.startswith("http://127.0.0.1:")
        status, headers, page = server.get("/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b'id="video"' in page and b"/stream.mjpg" in page and b"/api/latest" in page
        latest = server.wait_for(lambda r: r["faces"] and r["fps"])  # fps needs a second frame
        face = latest["faces"][0]
        assert face["lookalike"] in labels and len(face["top"]) == 3
        assert [t["score"] for t in face["top"]] == sorted((t["score"] for t in face["top"]), reverse=True)
        assert latest["fps"] > 0 and "classify" in latest["ms"] and latest["status"] == "running"
        frames = mjpeg_frames(server.url("/stream.mjpg"), 3)
        assert len(frames) == 3 and all(f[:2] == b"\xff\xd8" and f[-2:] == b"\xff\xd9" for f in frames)
        assert len(set(frames)) == 3  # the picture moves: three different frames, not one resent
        viewer = Viewer(server.url("/stream.mjpg"))  # the live-view benchmark's frame-counting client
        viewer.start()
        server.wait_for(lambda r: viewer.frames >= 2, timeout=20)
        status, headers, jpeg = server.get("/frame.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
        status, headers, png = server.get(f"/picture?label={face['lookalike']}")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
        assert server.get("/picture?label=nobody")[0] == 404
        assert server.get("/picture?label=x&file=../../labels.txt")[0] == 404
        elsewhere = sorted((tiny_models / "characters").glob("*.png"))[0].resolve()
        assert server.get(f"/picture?label=x&file={elsewhere}")[0] == 404  # no file outside the folders
        assert server.get(f"/picture?label=x&file=enrolled:{elsewhere}")[0] == 404
        assert server.get("/nowhere")[0] == 404


def test_an_enrolment_joins_a_running_server(tiny_models, drawing_clip, tmp_path):
    picture = sorted((tiny_models / "characters").glob("*.png"))[-1]
    with served(serve_args(tiny_models, drawing_clip)) as server:
        assert server.wait_for(lambda r: r["faces"])["enrolled"] == []
        result = subprocess.run([sys.executable, "-m", "edge", "enroll", "Robot", picture, "--models", tiny_models],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        latest = server.wait_for(lambda r: r["enrolled"] == ["Robot"])
        assert latest["status"] == "running"
        # --full-frame ranks by the gallery once a character is enrolled (the classifier cannot name it)
        server.wait_for(lambda r: r["faces"] and r["faces"][0]["method"] == "gallery")


def test_nothing_on_the_page_changes_state(tiny_models, drawing_clip):
    with served(serve_args(tiny_models, drawing_clip)) as server:
        for method in ("POST", "PUT", "DELETE"):
            status, headers, _ = server.get("/api/latest", method=method)
            assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_a_closed_viewer_frees_its_connection(tiny_models, drawing_clip):
    with served(serve_args(tiny_models, drawing_clip)) as server:
        host, port = server.base.split("//")[1].split(":")
        viewers = []
        for _ in range(2):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"multipart/x-mixed-replace" in sock.recv(4096)
            viewers.append(sock)
        server.wait_for(lambda r: r["viewers"] == 2)
        for sock in viewers:
            sock.close()
        server.wait_for(lambda r: r["viewers"] == 0)


def test_token_is_required_when_given(tiny_models, drawing_clip):
    with served(serve_args(tiny_models, drawing_clip, "--token", "s3cret-token")) as server:
        assert server.token == "s3cret-token"
        assert server.get("/api/latest", token=False)[0] == 401
        assert server.get("/stream.mjpg", token=False)[0] == 401
        assert server.get("/", token=False)[0] == 401
        status, _, _ = server.get("/api/latest", token=False, headers={"Authorization": "Bearer s3cret-token"})
        assert status == 200
        status, _, _ = server.get("/api/latest?token=wrong-token", token=False)
        assert status == 401
        assert server.get("/api/latest")[0] == 200


def _one_error(args: list, env: dict | None = None) -> str:
    import os

    result = subprocess.run([sys.executable, "-m", "edge", *[str(a) for a in args]], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, **(env or {})})
    return one_error_line(result.returncode, result.stderr)


def test_listening_beyond_this_machine_needs_a_token(tiny_models, drawing_clip):
    line = _one_error(["--serve", *serve_args(tiny_models, drawing_clip), "--host", "0.0.0.0"])
    assert "--token" in line and "0.0.0.0" in line


def test_a_short_token_is_refused(tiny_models, drawing_clip):
    assert "at least 8" in _one_error(["--serve", *serve_args(tiny_models, drawing_clip), "--token", "abc"])


def test_port_in_use(tiny_models, drawing_clip):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error(["--serve", *serve_args(tiny_models, drawing_clip), "--port", port])
    assert "already in use" in line and "--port" in line


def test_bad_host(tiny_models, drawing_clip):
    line = _one_error(["--serve", *serve_args(tiny_models, drawing_clip), "--host", "no-such-host.invalid",
                       "--token", "long-enough-token"])
    assert "no-such-host.invalid" in line


def test_missing_camera_is_retried_with_a_count_then_given_up(tiny_models):
    import os

    result = subprocess.run([sys.executable, "-m", "edge", "--serve", "--port", "0", "--source", "/dev/video99",
                             "--models", tiny_models, "--camera-retries", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "retry 1 of 1" in errors[0] and "/dev/video99" in errors[1]


def test_serve_refuses_pictures(tiny_models):
    picture = sorted((tiny_models / "characters").glob("*.png"))[0]
    line = _one_error(["--serve", "--port", "0", picture, "--models", tiny_models])
    assert "camera or a video" in line


def test_check_access_rules():
    check_access(ServeOptions(host="127.0.0.1"))
    check_access(ServeOptions(host="localhost"))
    with pytest.raises(ServeError, match="--token"):
        check_access(ServeOptions(host="0.0.0.0"))
    check_access(ServeOptions(host="0.0.0.0", token="long-enough-token"))


# --- the view itself: frames are encoded once and viewers that fall behind get the newest ----


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((48, 64, 3), 10 * i % 255, np.uint8) for i in range(n)]


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def test_no_encoding_without_viewers_and_a_slow_viewer_gets_the_newest_frame():
    view = LiveView(CharacterPictures(None), stream_fps=60)
    try:
        for i, frame in enumerate(_frames(20)):
            view.publish(frame, [], 30.0, {}, i)
        time.sleep(0.1)
        assert view.jpegs_encoded == 0  # nobody watches: nothing is drawn or encoded
        view.add_viewer()
        first = view.next_jpeg(-1, timeout=5)
        assert first is not None
        seq, _ = first
        # The viewer now stalls while the loop publishes many frames: when it asks again it gets
        # the newest JPEG, skipping the ones in between, and nothing was queued for it.
        for i, frame in enumerate(_frames(30)):
            view.publish(frame, [], 30.0, {}, 100 + i)
        _wait(lambda: view.latest()["frame"] == 129)
        time.sleep(0.2)
        encoded = view.jpegs_encoded
        newest = view.next_jpeg(seq, timeout=5)
        assert newest is not None and newest[0] == encoded  # the latest one made
        assert encoded < 1 + 30  # at most stream_fps: not one JPEG per published frame
        view.remove_viewer()
        assert view.viewers == 0
    finally:
        view.close()
    assert view.next_jpeg(0, timeout=1) is None  # a closed view wakes and releases its viewers


def test_many_viewers_share_one_encoding():
    view = LiveView(CharacterPictures(None), stream_fps=30)
    try:
        for _ in range(4):
            view.add_viewer()
        view.publish(_frames(1)[0], [], None, {}, 0)
        got = [view.next_jpeg(-1, timeout=5) for _ in range(4)]
        assert all(g is not None for g in got) and len({g[1] for g in got}) == 1
        assert view.jpegs_encoded == 1 and view.jpegs_sent == 4
    finally:
        view.close()


def test_latest_json_is_plain_data():
    view = LiveView(CharacterPictures(None))
    try:
        assert view.latest()["frame"] is None and view.latest()["faces"] == []
        view.set_status("camera", "camera 0 stopped delivering frames (retry 1 of 30 in 2 s)")
        latest = json.loads(json.dumps(view.latest()))
        assert latest["status"] == "camera" and "retry 1 of 30" in latest["message"]
    finally:
        view.close()


class _CameraThatGoesAway(FrameSource):
    """A live source: a few frames, then the camera is unplugged."""

    live = True
    name = "camera 7"

    def __init__(self, frames: int):
        self.left = frames

    def read(self):
        if self.left <= 0:
            raise SourceError("camera 7 stopped delivering frames (30 failed reads in a row)")
        self.left -= 1
        return Frame(np.full((240, 320, 3), 128, np.uint8), 5 - self.left)


def test_camera_unplugged_mid_run_is_retried_then_reported(tiny_models, capsys):
    from edge.live import RunOptions, run
    from edge.pipeline import PipelineOptions
    from edge.sources import SourceError

    options = RunOptions(source="/dev/video98", models=tiny_models, show_window=False, camera_retries=2,
                         serve=ServeOptions(port=0), pipeline=PipelineOptions(full_frame=True))
    with pytest.raises(SourceError, match="/dev/video98"):
        run(options, source=_CameraThatGoesAway(5))
    err = capsys.readouterr().err
    assert "camera 7 stopped delivering frames (30 failed reads in a row) (retry 1 of 2 in 2 s)" in err
    assert "retry 2 of 2" in err and "Traceback" not in err


@pytest.mark.parametrize("args, says", [
    (["--port", "70000"], "--port: 70000 is out of range (0..65535)"),
    (["--port", "web"], "--port: expected a whole number"),
    (["--stream-fps", "0"], "--stream-fps: 0 is out of range (0.5..60)"),
    (["--camera-retries", "-1"], "--camera-retries: -1 is out of range (at least 0)"),
])
def test_bad_numbers_stop_before_anything_starts(args, says, capsys):
    from edge.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["--serve", *args])
    assert stopped.value.code == 2 and says in capsys.readouterr().err


def test_a_frame_that_cannot_be_drawn_does_not_stop_the_view(monkeypatch, capsys):
    import edge.serve

    calls = {"n": 0}
    real = edge.serve.draw_frame

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("a broken frame")
        return real(*args, **kwargs)

    monkeypatch.setattr(edge.serve, "draw_frame", flaky)
    view = LiveView(CharacterPictures(None), stream_fps=60)
    try:
        view.add_viewer()
        view.publish(_frames(1)[0], [], None, {}, 0)
        _wait(lambda: calls["n"] >= 1)
        view.publish(_frames(2)[1], [], None, {}, 1)
        assert view.next_jpeg(-1, timeout=5) is not None  # the encoder lived on
    finally:
        view.close()
    assert "could not draw a frame (a broken frame)" in capsys.readouterr().err
