"""``python -m edge --serve``: the live lookalike in a browser, for a device without a screen.

The camera loop publishes each processed frame here (a reference, no copy, no drawing). One
encoder thread draws and JPEG-encodes the newest frame, at most ``stream_fps`` times a second
and only while someone watches, so the encoding is done once however many viewers there are.
Each viewer's connection waits for the next encoded frame and sends the newest one: a slow viewer
skips frames, it never makes the camera loop wait, and a closed tab ends its thread.

Pages and endpoints (all read-only; any other method gets 405):

    /              the page: the annotated video, each face's lookalike, top-3, picture, FPS, stage ms
    /stream.mjpg   the annotated video as MJPEG (also plays in VLC or an <img>)
    /frame.jpg     the newest annotated frame
    /api/latest    the newest result as JSON (faces, top-3 and scores, FPS, stage ms, camera status)
    /picture       a character's picture (?label=...&file=...)

It listens on 127.0.0.1 unless ``--host`` says otherwise; beyond this machine it needs a token
(``--token`` or ``$LOOKALIKE_TOKEN``), given as ``?token=`` or ``Authorization: Bearer``.
"""
from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edge.overlay import CharacterPictures, display_name, draw_frame, why_text
from edge.pipeline import FaceResult
from edge.records import face_record

BOUNDARY = "lookalikeframe"


class ServeError(RuntimeError):
    """The server cannot start (port in use, bad host, no token); the message says what to do."""


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    stream_fps: float = 15.0  # encoded frames per second at most (the camera loop may run faster)
    jpeg_quality: int = 80


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is this machine's loopback."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on --host {host}: {exc.strerror or 'unknown host'}") from exc
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_access(options: ServeOptions) -> None:
    """Refuse, with one line, to show the camera beyond this machine without a token."""
    if options.token is not None and len(options.token) < 8:
        raise ServeError("--token must be at least 8 characters (anyone who guesses it sees the camera)")
    if not is_loopback(options.host) and not options.token:
        raise ServeError(
            f"--host {options.host} lets other machines watch the camera: give a token with --token SECRET "
            "(or LOOKALIKE_TOKEN), or leave --host at 127.0.0.1"
        )


class LiveView:
    """The newest frame and result, shared between the camera loop and the viewers."""

    def __init__(self, pictures: CharacterPictures, stream_fps: float = 15.0, jpeg_quality: int = 80):
        self.pictures = pictures
        self.interval = 1.0 / max(0.5, float(stream_fps))
        self.quality = int(jpeg_quality)
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)  # the loop published a frame
        self._new_jpeg = threading.Condition(self._lock)  # the encoder made a JPEG
        self._frame: tuple | None = None  # (bgr, faces, fps, stage_ms, index)
        self._frame_seq = 0
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._viewers = 0
        self._result: dict[str, Any] = {"frame": None, "faces": [], "fps": None, "ms": {}}
        self.status = "starting"
        self.status_message = ""
        self.enrolled: list[str] = []  # names of the enrolled characters the match knows
        self.frames_published = 0
        self.jpegs_encoded = 0
        self.jpegs_sent = 0
        self._closed = False
        self._encode_failed = False
        self._encoder = threading.Thread(target=self._encode_forever, name="lookalike-encoder", daemon=True)
        self._encoder.start()

    # -------------------------------------------------- the camera loop's side

    def publish(self, bgr: np.ndarray, faces: Sequence[FaceResult], fps: float | None,
                stage_ms: dict[str, float], index: int) -> None:
        """The newest processed frame (kept by reference: the loop must not change it afterwards)."""
        with self._lock:
            self._frame = (bgr, list(faces), fps, dict(stage_ms), index)
            self._frame_seq += 1
            self.frames_published += 1
            self.status, self.status_message = "running", ""
            self._new_frame.notify()

    def set_status(self, status: str, message: str) -> None:
        """What the page shows when there is no picture (camera lost, retrying ...)."""
        with self._lock:
            self.status, self.status_message = status, message
            self._new_jpeg.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._new_frame.notify_all()
            self._new_jpeg.notify_all()

    # -------------------------------------------------- the viewers' side

    def add_viewer(self) -> None:
        with self._lock:
            self._viewers += 1
            self._new_frame.notify()  # encode the current frame at once for the newcomer

    def remove_viewer(self) -> None:
        with self._lock:
            self._viewers -= 1

    @property
    def viewers(self) -> int:
        return self._viewers

    def next_jpeg(self, after: int, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The first JPEG newer than ``after`` (its number and bytes), or None on timeout or close."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._closed and (self._jpeg is None or self._jpeg_seq <= after):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._new_jpeg.wait(remaining)
            if self._closed:
                return None
            self.jpegs_sent += 1
            return self._jpeg_seq, self._jpeg

    def fresh_jpeg(self, timeout: float = 2.0) -> bytes | None:
        """A JPEG of the newest frame (the last one made when no new frame comes within ``timeout``)."""
        with self._lock:
            seq = self._jpeg_seq
        self.add_viewer()
        try:
            found = self.next_jpeg(seq, timeout)
        finally:
            self.remove_viewer()
        if found is not None:
            return found[1]
        with self._lock:
            return self._jpeg

    def latest(self) -> dict[str, Any]:
        with self._lock:
            frame = self._frame
            result = {"status": self.status, "message": self.status_message, "viewers": self._viewers,
                      "enrolled": list(self.enrolled), "jpegs_sent": self.jpegs_sent,
                      "frames": self.frames_published, "frame": None, "faces": [], "fps": None, "ms": {}}
        if frame is not None:
            _, faces, fps, ms, index = frame
            result.update({"frame": index, "fps": None if fps is None else round(fps, 1),
                           "ms": {k: round(v, 2) for k, v in ms.items() if v >= 0.005},
                           "faces": [face_summary(face) for face in faces]})
        return result

    # -------------------------------------------------- the encoder

    def _encode_forever(self) -> None:
        seen = 0
        last = 0.0
        while True:
            with self._lock:
                while not self._closed and (self._viewers == 0 or self._frame_seq == seen):
                    self._new_frame.wait()
                if self._closed:
                    return
                frame, seen = self._frame, self._frame_seq
            wait = last + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # at most stream_fps; then take the newest frame
                with self._lock:
                    frame, seen = self._frame, self._frame_seq
            last = time.monotonic()
            try:
                jpeg = self._encode(frame)
            except Exception as exc:  # noqa: BLE001 - the live view must outlive one bad frame
                if not self._encode_failed:
                    print(f"warning: the live view could not draw a frame ({exc}); it keeps trying", file=sys.stderr)
                self._encode_failed = True
                continue
            with self._lock:
                self._jpeg = jpeg
                self._jpeg_seq += 1
                self.jpegs_encoded += 1
                self._new_jpeg.notify_all()

    def _encode(self, frame: tuple) -> bytes:
        bgr, faces, fps, ms, _ = frame
        annotated = draw_frame(bgr, faces, self.pictures, fps, ms)
        ok, encoded = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return encoded.tobytes() if ok else b""


def face_summary(face: FaceResult) -> dict[str, Any]:
    """One face for /api/latest: the ``--json`` record (``edge.records.face_record``, same fields and
    meanings) plus what the page shows: ``lookalike`` and its display ``name``, a ``name`` in each
    ``top`` entry, and ``why_text`` ("glasses, grey hair")."""
    record = face_record(face)
    best = face.lookalike.best
    return {
        **record,
        "lookalike": best.label if best else None,
        "name": display_name(best.label) if best else None,
        "top": [{**entry, "name": display_name(entry["label"])} for entry in record["top"]],
        "why_text": why_text(face.lookalike),
    }


class _Handler(BaseHTTPRequestHandler):
    server: "LookalikeServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the camera loop's output stays readable; errors reach the page instead

    # Nothing on the page can change state: every method but GET and HEAD is refused.
    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: only GET\n", "text/plain", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorised(query):
            self._send(HTTPStatus.UNAUTHORIZED, b"a token is needed: open the page as /?token=...\n", "text/plain")
            return
        view = self.server.view
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.encode("utf-8"), "text/html; charset=utf-8", head=head)
        elif url.path == "/api/latest":
            body = json.dumps(view.latest(), ensure_ascii=False).encode("utf-8")
            self._send(HTTPStatus.OK, body, "application/json", head=head)
        elif url.path == "/frame.jpg":
            jpeg = view.fresh_jpeg()
            if jpeg is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain")
            else:
                self._send(HTTPStatus.OK, jpeg, "image/jpeg", head=head)
        elif url.path == "/stream.mjpg":
            if head:
                self._send(HTTPStatus.OK, b"", f"multipart/x-mixed-replace; boundary={BOUNDARY}", head=True)
            else:
                self._stream()
        elif url.path == "/picture":
            self._picture(query, head)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        token = self.server.token
        if not token:
            return True
        given = (query.get("token") or [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):]
        return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict[str, str] | None = None,
              head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _stream(self) -> None:
        view = self.server.view
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        view.add_viewer()
        seq = -1
        try:
            while not self.server.stopping:
                found = view.next_jpeg(seq, timeout=1.0)
                if found is None:
                    continue
                seq, jpeg = found
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode("ascii") + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            pass  # the viewer went away: its thread ends here
        finally:
            view.remove_viewer()

    def _picture(self, query: dict[str, list[str]], head: bool) -> None:
        label = (query.get("label") or [""])[0]
        file = (query.get("file") or [None])[0]
        picture = self.server.view.pictures.picture(label, 128, file) if label else None
        if picture is None:
            self._send(HTTPStatus.NOT_FOUND, b"no picture\n", "text/plain")
            return
        ok, encoded = cv2.imencode(".png", picture)
        self._send(HTTPStatus.OK, encoded.tobytes(), "image/png", {"Cache-Control": "max-age=3600"}, head=head)


class LookalikeServer(ThreadingHTTPServer):
    daemon_threads = True  # a viewer's thread never keeps the program alive
    allow_reuse_address = True

    def __init__(self, options: ServeOptions, view: LiveView):
        self.view = view
        self.token = options.token
        self.stopping = False
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        self.address_family = family
        try:
            super().__init__((options.host, options.port), _Handler)
        except socket.gaierror as exc:
            raise ServeError(f"cannot listen on --host {options.host}: {exc.strerror or 'unknown host'}") from exc
        except OSError as exc:
            where = f"{options.host}:{options.port}"
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(f"port {options.port} on {options.host} is already in use (another --serve?): "
                                 "pick another with --port") from exc
            if exc.errno == errno.EACCES:
                raise ServeError(f"not allowed to listen on {where} (ports below 1024 need root): use --port 8000") from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ServeError(f"--host {options.host} is not an address of this machine") from exc
            raise ServeError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        shown = f"[{shown}]" if ":" in str(shown) else shown
        return f"http://{shown}:{port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="lookalike-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping = True
        self.view.close()
        self.shutdown()
        self.server_close()


def start_server(options: ServeOptions, pictures: CharacterPictures) -> LookalikeServer:
    check_access(options)
    view = LiveView(pictures, options.stream_fps, options.jpeg_quality)
    try:
        server = LookalikeServer(options, view)
    except ServeError:
        view.close()
        raise
    server.start()
    return server


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cartoon lookalike</title>
<style>
 body{margin:0;font-family:system-ui,sans-serif;background:#1e1e1e;color:#eee}
 main{display:flex;flex-wrap:wrap;gap:16px;padding:16px}
 #video{max-width:100%;background:#000;min-width:320px;min-height:240px}
 aside{min-width:260px;flex:1}
 .face{background:#2b2b2b;border-radius:8px;padding:10px;margin-bottom:10px;display:flex;gap:10px}
 .face img{width:96px;height:96px;background:#fff;border-radius:6px}
 .name{font-size:1.3em;font-weight:600}
 .bar{height:6px;background:#2d7dc8;border-radius:3px;margin:2px 0 6px}
 #status{padding:8px 16px;background:#553;display:none}
 small{color:#aaa}
</style></head><body>
<div id="status"></div>
<main>
 <img id="video" alt="live camera with lookalikes">
 <aside>
  <div id="faces"><p id="waiting">Waiting for the camera...</p></div>
  <p><small id="speed"></small></p>
 </aside>
</main>
<script>
const token = new URLSearchParams(location.search).get("token");
const q = token ? "token=" + encodeURIComponent(token) : "";
const withToken = (path) => path + (q ? (path.includes("?") ? "&" : "?") + q : "");
document.getElementById("video").src = withToken("/stream.mjpg");
function esc(text){const d=document.createElement("div");d.textContent=text==null?"":String(text);return d.innerHTML;}
async function poll(){
 try{
  const r = await fetch(withToken("/api/latest"), {cache:"no-store"});
  const data = await r.json();
  const status = document.getElementById("status");
  status.style.display = data.message ? "block" : "none";
  status.textContent = data.message || "";
  const faces = document.getElementById("faces");
  if (data.faces.length === 0) {
   faces.innerHTML = data.frame === null ? "<p>Waiting for the camera...</p>" : "<p>No face in view</p>";
  } else {
   faces.innerHTML = data.faces.map(f => {
    const pic = withToken("/picture?label=" + encodeURIComponent(f.lookalike) +
                          (f.picture ? "&file=" + encodeURIComponent(f.picture) : ""));
    const top = f.top.map(t => `<div>${esc(t.name)} <small>${(100*t.score).toFixed(0)}%</small></div>` +
                               `<div class="bar" style="width:${Math.round(150*t.score)}px"></div>`).join("");
    const why = f.why_text ? `<div><small>you both have: ${esc(f.why_text)}</small></div>` : "";
    return `<div class="face"><img src="${pic}" alt=""><div><div class="name lookalike">${esc(f.name)}</div>${why}${top}</div></div>`;
   }).join("");
  }
  const ms = Object.entries(data.ms).filter(([k]) => k !== "total").map(([k,v]) => `${k} ${v.toFixed(1)}`).join(", ");
  document.getElementById("speed").textContent = data.fps === null ? "" : `${data.fps.toFixed(1)} FPS | ms: ${ms} | viewers ${data.viewers}`;
 } catch (e) {
  const status = document.getElementById("status");
  status.style.display = "block"; status.textContent = "lost contact with the device; retrying";
 }
 setTimeout(poll, 500);
}
poll();
</script></body></html>
"""
