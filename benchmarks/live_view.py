"""``python -m benchmarks.live_view``: what watching costs the camera loop, and how soon the page shows.

    python -m benchmarks.live_view --models models --face ../shared/faces/grace_hopper.jpg

1. **Camera loop FPS with and without viewers.** ``python -m edge --serve VIDEO --unpaced`` runs on
   a recorded 640x480 clip (made from ``--face``, or ``--video``) as fast as it can, once with no
   viewer and once with ``--viewers`` MJPEG clients reading the stream the whole time, alternated
   ``--repeats`` times; the loop's own FPS and peak RSS come from its summary line.
2. **First frame in a browser.** With the clip played at its frame rate, headless Chromium opens
   the page ``--page-loads`` times; the time from asking for the page to the first decoded frame
   of the video element (needs Debian's chromium and chromium-driver; skipped without them).

Writes ``live_view.json`` and ``live_view.md`` in ``--out``. Device side only: no TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import machine_info
from benchmarks.serve_client import Viewer, start_serve
from edge.artifacts import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"(\d+) frames in ([\d.]+) s \(([\d.]+) FPS.*peak RSS (\d+) MB")


def serve(args: list[str], env_state: Path) -> tuple[subprocess.Popen, str]:
    process, url, _ = start_serve(args, {"LOOKALIKE_STATE": str(env_state)})
    return process, url


def loop_run(video: Path, models: Path, variant: str, viewers: int, state: Path) -> dict:
    process, url = serve([str(video), "--models", str(models), "--variant", variant, "--threads", "1",
                          "--unpaced"], state)
    clients = [Viewer(url.split("?")[0] + "stream.mjpg") for _ in range(viewers)]
    for client in clients:
        client.start()
    _, err = process.communicate(timeout=900)
    match = SUMMARY.search(err)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"the serve run failed: {err[-2000:]}")
    for client in clients:
        client.join(timeout=10)
    return {"viewers": viewers, "frames": int(match[1]), "seconds": float(match[2]), "fps": float(match[3]),
            "peak_rss_mb": int(match[4]), "viewer_fps": [round(c.fps, 1) for c in clients]}


def first_frames(video: Path, models: Path, variant: str, loads: int, state: Path) -> dict:
    from benchmarks.webdriver import Browser, find_browser

    found = find_browser()
    if found is None:
        return {"skipped": "no chromium + chromedriver (Debian: apt install chromium chromium-driver)"}
    process, url = serve([str(video), "--models", str(models), "--variant", variant], state)
    browser = Browser(*found)
    times = []
    try:
        time.sleep(1.0)  # the loop is running, as on a device that has been on for a while
        for _ in range(loads):
            browser.open("about:blank")
            started = time.perf_counter()
            browser.open(url)
            while not browser.run("return document.getElementById('video').naturalWidth > 0;"):
                if time.perf_counter() - started > 30:
                    raise RuntimeError("the page showed no frame within 30 s")
                time.sleep(0.01)
            times.append(time.perf_counter() - started)
    finally:
        browser.close()
        process.terminate()
        process.wait(timeout=30)
    return {"loads": loads, "seconds": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live_view", description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--face", type=Path, default=ROOT.parent / "shared" / "faces" / "grace_hopper.jpg",
                        help="photo the recorded clip is made from")
    parser.add_argument("--video", type=Path, help="a recorded 640x480 clip instead of one made from --face")
    parser.add_argument("--frames", type=int, default=1800, help="length of the made clip (30 FPS)")
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--page-loads", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        video = args.video
        if video is None:
            from edge.video import write_test_video

            video = write_test_video(scratch / "clip.mp4", args.face, frames=args.frames)
        runs = []
        for repeat in range(args.repeats):
            for viewers in ((0, args.viewers) if repeat % 2 == 0 else (args.viewers, 0)):
                run = loop_run(video, args.models, args.variant, viewers, scratch / "state")
                print(f"viewers {viewers}: {run['fps']:.1f} FPS, peak RSS {run['peak_rss_mb']} MB, "
                      f"viewers received {run['viewer_fps']} FPS", file=sys.stderr)
                runs.append(run)
        page = first_frames(video, args.models, args.variant, args.page_loads, scratch / "state")
    alone = statistics.median(r["fps"] for r in runs if r["viewers"] == 0)
    watched = statistics.median(r["fps"] for r in runs if r["viewers"] == args.viewers)
    result = {
        "machine": machine_info(),
        "video": str(args.video or f"{args.frames} frames made from {args.face.name}"),
        "variant": args.variant, "threads": 1, "runs": runs,
        "fps_without_viewers": alone, "fps_with_viewers": watched, "viewers": args.viewers,
        "kept": round(watched / alone, 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "first_frame": page,
    }
    atomic_write_text(args.out / "live_view.json", json.dumps(result, indent=1) + "\n")
    lines = [
        "# Live view (`python -m edge --serve`)", "",
        f"Recorded 640x480 clip ({result['video']}), {args.variant}, 1 thread, `--unpaced`; "
        f"median of {args.repeats} runs each, alternated.", "",
        "| viewers | camera loop FPS | peak RSS MB |", "|---|---|---|",
        f"| 0 | {alone:.1f} | {max(r['peak_rss_mb'] for r in runs if r['viewers'] == 0)} |",
        f"| {args.viewers} | {watched:.1f} | {max(r['peak_rss_mb'] for r in runs if r['viewers'] == args.viewers)} |",
        "", f"With {args.viewers} viewers the loop keeps **{100 * result['kept']:.0f}%** of its FPS (goal >= 90%).",
    ]
    if "median_s" in page:
        lines.append(f"First frame on the page: median {page['median_s']:.2f} s, worst {page['max_s']:.2f} s "
                     f"over {page['loads']} loads in headless Chromium (goal <= 2 s).")
    else:
        lines.append(f"First frame on the page: not measured ({page['skipped']}).")
    atomic_write_text(args.out / "live_view.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
