"""The camera loop: read a frame, find the lookalikes, draw them, show or save, repeat.

Shaped like TensorFlow's Raspberry Pi classify.py: one ``run()`` with a plain loop, an options
object, FPS averaged over a window and Esc to quit. Added: per-stage timing, a headless mode
(annotated video, JSON lines, lookalike card), sources other than a webcam, and a dropped frame
is counted and skipped instead of ending the program.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.card import main_face, save_card
from edge.records import describe_faces, face_record, frame_record  # noqa: F401 - part of this module's interface
from edge.runstats import FpsMeter, RunSummary, StageAverages, peak_rss_mb
from edge.enrolment import EnrolledGallery
from edge.faces import describe_detector, make_face_detector
from edge.matcher import LookalikeMatcher
from edge.command import stop_signal_as_interrupt
from edge.outputs import JsonLinesWriter, annotated_output, check_image_path
from edge.overlay import CharacterPictures, draw_frame
from edge.pipeline import FaceResult, FrameResult, LookalikePipeline, PipelineOptions, StageTimer
from edge.runtime import LookalikeModel, model_path
from edge.serve import LiveView, LookalikeServer, ServeOptions, start_server
from edge.sources import Frame, FrameSource, SourceError, astronaut_source, is_pictures, open_source
from edge.state import StateFolder, StateKeeper
from edge.window import ESC, Window, WindowError  # noqa: F401 - WindowError is part of this module's interface

@dataclass
class RunOptions:
    source: str = "0"
    models: Path = Path("models")
    variant: str = "int8"
    threads: int = 1
    detector: str | None = "auto"  # auto: YuNet when cached, else Haar; 'haar'; a path: YuNet .onnx or Haar .xml
    show_window: bool = True
    output: Path | None = None  # annotated video (or image, for one picture)
    json_path: Path | None = None  # one JSON object per frame or picture
    card: Path | None = None  # lookalike card of the last face seen (and the 's' key's file)
    astronaut: bool = False  # use scikit-image's astronaut photo as the source
    match: str = "auto"
    adapt_faces: bool = True  # the gallery's face mean follows the people seen (edge.matcher.FaceDomain)
    adapt_style: bool = True  # the classifier's feature statistics follow the pictures seen (edge.style_domain)
    use_traits: bool = True  # weigh the traits the model reads from a face (glasses, hair ...) in the match
    max_frames: int | None = None
    camera_size: tuple[int, int] = (640, 480)
    fps_window: int = 10  # frames the shown FPS and stage times are averaged over
    quiet: bool = False
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    serve: ServeOptions | None = None  # --serve: the live view in a browser
    state: Path | None = None  # the state folder (None: edge.state.default_state_folder())
    reset_state: bool = False  # forget what was learned (face mean, feature statistics) and enrolled first
    camera_retries: int = 30  # --serve: how often a lost camera is reopened (2 s apart) before giving up
    paced: bool = True  # --serve with a video file: play it at its frame rate (and from the start again)


def characters_folder(model: LookalikeModel) -> Path | None:
    name = model.sidecar.characters
    return model.sidecar.beside(name) if name else None


def warm_up(model: LookalikeModel) -> None:
    """One inference before timing: the interpreter sets up its kernels on the first call."""
    size = model.contract.input_size
    model.predict(np.zeros((size, size, 3), np.uint8))


@dataclass
class _Outputs:
    """The run's output files, committed together at the end."""

    video: Any = None
    json: JsonLinesWriter | None = None

    def commit(self) -> list[str]:
        written = []
        for output in (self.video, self.json):
            if output is not None:
                path = output.commit()
                if path is not None:
                    written.append(str(path))
        return written

    def discard(self) -> None:
        for output in (self.video, self.json):
            if output is not None:
                output.discard()


class NoFaceError(RuntimeError):
    """A card was asked for but no face was found."""


def open_run_source(options: RunOptions) -> FrameSource:
    return astronaut_source() if options.astronaut else open_source(options.source, options.camera_size)


def make_matcher(model: LookalikeModel, options: RunOptions, state: StateFolder | None = None
                 ) -> tuple[LookalikeMatcher, EnrolledGallery | None]:
    """The matcher the model was shipped with, plus the characters enrolled in ``state``.

    A whole picture (``--full-frame``, a drawing) is compared with the gallery as a drawing, and
    ranked by the classifier unless ``--match`` says otherwise or characters are enrolled (the
    classifier cannot name those)."""
    contract = model.contract
    traits = contract.traits if options.use_traits else ()
    thresholds = contract.trait_thresholds if options.use_traits else ()
    full_frame = options.pipeline.full_frame
    matcher = LookalikeMatcher.from_sidecar(model.path, model.sidecar, model.labels, contract.embedding_dim,
                                            options.match, options.adapt_faces, traits, thresholds,
                                            adapt_style=options.adapt_style)
    enrolled = None
    if matcher.gallery is not None:
        matcher.gallery.drawings = full_frame
        if state is not None:
            enrolled = EnrolledGallery(model, state, matcher.gallery)
            refreshed = enrolled.refresh(matcher.gallery, force=True)
            if refreshed is not None:
                matcher.gallery = refreshed
    choose_method(matcher, options, enrolled)
    return matcher, enrolled


def choose_method(matcher: LookalikeMatcher, options: RunOptions, enrolled: EnrolledGallery | None) -> None:
    if options.match == "auto" and options.pipeline.full_frame:
        matcher.method = "gallery" if enrolled is not None and enrolled.names else "classifier"


def run(options: RunOptions, source: FrameSource | None = None) -> RunSummary:
    """Run the lookalike loop until the source ends, the user quits or ``max_frames`` is reached.

    ``source`` replaces ``options.source`` (frames already in memory, a benchmark's own reader).
    """
    state = StateFolder(options.state)
    if options.reset_state:
        state.check_writable()
        removed = state.reset()
        if not options.quiet:
            print(f"state reset in {state.folder}: " + (", ".join(removed) if removed else "nothing was saved"),
                  file=sys.stderr)
    server = None
    if options.serve is not None:
        if source is None and is_pictures(options.source):
            raise SourceError(f"--serve shows a camera or a video, not pictures ({options.source}): "
                              "for photos use --card or --output")
        state.check_writable()
        server = start_server(options.serve, CharacterPictures(None))  # fails now on a taken port or host
    try:
        model = LookalikeModel(model_path(options.models, options.variant), num_threads=options.threads)
        matcher, enrolled = make_matcher(model, options, state)
        detector = None if options.pipeline.full_frame else make_face_detector(options.detector)
        pipeline = LookalikePipeline(model, detector, matcher, options.pipeline)

        def tell_detector() -> None:  # a camera's user wants to know; a file's run stays quiet on stderr
            if detector is not None and not options.quiet:
                print(f"face detector: {describe_detector(detector)}, "
                      f"detecting at {pipeline.detect_width} px wide", file=sys.stderr, flush=True)

        if server is not None:
            server.view.pictures = CharacterPictures(characters_folder(model), state.pictures_folder)
            if not options.quiet:
                print(f"live view: {server.url}", file=sys.stderr, flush=True)
            tell_detector()
            with stop_signal_as_interrupt():
                return serve_loop(options, model, pipeline, state, enrolled, server, source)
        source = source if source is not None else open_run_source(options)
        try:
            loop = LookalikeLoop(options, model, pipeline, source, state, enrolled)
            if not source.live:
                return loop.run()
            tell_detector()
            with stop_signal_as_interrupt():  # a camera runs until stopped: keep what it learned
                return loop.run()
        finally:
            source.close()
    finally:
        if server is not None:
            server.stop()


def serve_loop(options: RunOptions, model: LookalikeModel, pipeline: LookalikePipeline, state: StateFolder,
               enrolled: EnrolledGallery | None, server: LookalikeServer, source: FrameSource | None) -> RunSummary:
    """``--serve``: the loop feeding the live view. A camera that cannot be opened or goes away is
    reopened every 2 s, the attempts counted on the page and on stderr, up to ``camera_retries``."""
    view = server.view
    attempts = 0
    keeper = None
    while True:
        try:
            current = source if source is not None else open_run_source(options)
        except SourceError as exc:
            attempts += 1
            if attempts > options.camera_retries:
                raise
            _camera_trouble(view, exc, attempts, options)
            continue
        source = None  # a given source is used once; afterwards the options' source is reopened
        if current.still:
            current.close()
            raise SourceError(f"--serve shows a camera or a video, not pictures ({current.name}): "
                              "for photos use --card or --output")
        published = view.frames_published
        try:
            loop = LookalikeLoop(options, model, pipeline, current, state, enrolled, view, keeper)
            keeper = loop.keeper
            summary = loop.run()
        except SourceError as exc:
            if view.frames_published > published:
                attempts = 0  # it worked for a while: a new loss starts a new count
            attempts += 1
            if attempts > options.camera_retries:
                raise
            _camera_trouble(view, exc, attempts, options)
            pipeline.reset()
            continue
        finally:
            current.close()
        if summary.stopped_by == "end" and options.paced and not current.still and options.max_frames is None:
            pipeline.reset()
            continue  # a recorded video stands in for a camera: play it again
        return summary


def _camera_trouble(view: LiveView, exc: Exception, attempt: int, options: RunOptions) -> None:
    message = f"{exc} (retry {attempt} of {options.camera_retries} in 2 s)"
    view.set_status("camera", message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    time.sleep(2.0)


class LookalikeLoop:
    """One run over one source: the loop, its outputs, its window and its statistics."""

    def __init__(self, options: RunOptions, model: LookalikeModel, pipeline: LookalikePipeline, source: FrameSource,
                 state: StateFolder | None = None, enrolled: EnrolledGallery | None = None,
                 view: LiveView | None = None, keeper: StateKeeper | None = None):
        self.options = options
        self.model = model
        self.pipeline = pipeline
        self.source = source
        self.state = state
        self.enrolled = enrolled if not source.still else None  # pictures: enrolled once, at the start
        self.view = view
        if view is not None and enrolled is not None:
            view.enrolled = list(enrolled.names)
        self.pictures = view.pictures if view is not None else CharacterPictures(
            characters_folder(model), state.pictures_folder if state is not None else None)
        # A camera (or the live view) keeps what it learns for the next run; a folder, a video file or
        # photos never change what a camera learned.
        self.keeper = keeper
        if keeper is None and state is not None and (source.live or view is not None):
            self.keeper = self._keep_learning(state)
        self.summary = RunSummary(interpreter=model.interpreter_module, still=source.still)
        self.fps_meter = FpsMeter(options.fps_window)
        self.averages = StageAverages(options.fps_window)
        self.paused = False
        self._last_shown = 0.0
        self._fps: float | None = None
        self._next_due: float | None = None
        # The most recent frame with a face, and its main face: what a card shows.
        self.card_frame: np.ndarray | None = None
        self.card_face: FaceResult | None = None
        if options.card is not None:
            check_image_path(options.card)
        self.outputs = self._open_outputs()
        self.window: Window | None = None

    def _keep_learning(self, state: StateFolder) -> StateKeeper | None:
        """Start what adapts (the face mean, the classifier's statistics) from what was saved, and keep it."""
        matcher = self.pipeline.matcher
        faces = matcher.gallery.faces if matcher.gallery is not None else None
        if faces is None and matcher.style is None:
            return None
        if self.view is None:
            state.check_writable()
        keeper = StateKeeper(state, self.model.sidecar.tflite_sha256)
        if faces is not None:
            keeper.keep_face_mean(faces)
        if matcher.style is not None:
            keeper.keep_style(matcher.style.statistics, "drawings" if self.options.pipeline.full_frame else "faces")
        return keeper

    def _open_outputs(self) -> _Outputs:
        options, source = self.options, self.source
        video = None
        if options.output is not None:
            video = annotated_output(options.output, source.fps, source.still, source.picture_count == 1)
        return _Outputs(video, JsonLinesWriter(options.json_path) if options.json_path else None)

    def run(self) -> RunSummary:
        summary = self.summary
        try:
            self.window = Window() if self.options.show_window else None
            warm_up(self.model)
            started = time.perf_counter()
            try:
                summary.stopped_by = self._loop()
            except KeyboardInterrupt:
                summary.stopped_by = "interrupt"
            summary.seconds = time.perf_counter() - started
            if self.keeper is not None:
                self.keeper.maybe_save(force=True)
        except SourceError:
            if self.keeper is not None:
                self.keeper.maybe_save(force=True)
            # The camera went away mid-run: keep what was finished, then report the error.
            summary.written = self.outputs.commit()
            raise
        except BaseException:
            self.outputs.discard()
            raise
        finally:
            if self.window is not None:
                self.window.close()
        summary.mean_ms = self.averages.overall()
        if self.source.still and summary.frames == 0 and summary.dropped > 0:
            self.outputs.discard()
            raise SourceError(f"no picture in {self.source.name} could be decoded: pass a JPEG or PNG photo")
        summary.written = self.outputs.commit()
        if self.options.card is not None:
            summary.written.append(str(self.write_card(self.options.card)))
        summary.peak_rss_mb = peak_rss_mb()
        return summary

    def _loop(self) -> str:
        """Frames until the end: returns why it stopped (end, max_frames, user)."""
        options, summary = self.options, self.summary
        while True:
            if options.max_frames is not None and summary.frames >= options.max_frames:
                return "max_frames"
            timer = StageTimer()
            with timer.stage("read"):
                frame: Frame = self.source.read()
            if frame.end:
                return "end"
            if frame.image is None:
                self._skip(frame)
                continue
            self._follow_state()
            result = self.pipeline.process(frame.image, still=self.source.still, timer=timer)
            annotated = self._record(frame, result, timer)
            if self.view is not None:
                self.view.publish(frame.image, result.faces, self._fps, self.averages.recent(), summary.frames)
                self._pace()
            if self.window is not None and self._react_to_keys(annotated):
                return "user"

    def _follow_state(self) -> None:
        """Characters enrolled meanwhile join the gallery (faces are then forgotten: their
        smoothed scores have one entry per character); what was learned is saved now and then."""
        if self.enrolled is not None:
            matcher = self.pipeline.matcher
            refreshed = self.enrolled.refresh(matcher.gallery)
            if refreshed is not None:
                matcher.gallery = refreshed
                choose_method(matcher, self.options, self.enrolled)
                self.pipeline.reset()
                if self.view is not None:
                    self.view.enrolled = list(self.enrolled.names)
                if not self.options.quiet:
                    names = ", ".join(self.enrolled.names) or "none"
                    print(f"enrolled characters now: {names}", file=sys.stderr, flush=True)
        if self.keeper is not None:
            self.keeper.maybe_save()

    def _pace(self) -> None:
        """--serve with a video file: frames at the video's rate, as a camera would deliver them."""
        if self.source.live or self.source.still or not self.options.paced:
            return
        now = time.perf_counter()
        if self._next_due is None:
            self._next_due = now
        self._next_due += 1.0 / self.source.fps
        if self._next_due > now:
            time.sleep(self._next_due - now)
        else:
            self._next_due = now

    def _skip(self, frame: Frame) -> None:
        """A frame that could not be read or decoded: count it, note it, carry on."""
        self.summary.dropped += 1
        error = frame.error or "frame could not be read"
        if self.source.still:
            print(f"warning: skipped {frame.label}: {error}", file=sys.stderr)
        if self.outputs.json is not None:
            self.outputs.json.write(frame_record(frame.label, None, {}, error))

    def _record(self, frame: Frame, result: FrameResult, timer: StageTimer) -> np.ndarray | None:
        """Count, draw and write one processed frame; returns the annotated frame if drawn."""
        summary = self.summary
        summary.frames += 1
        summary.classifications += result.classified
        if result.faces:
            summary.frames_with_faces += 1
            self.card_frame, self.card_face = frame.image, main_face(result.faces)
        fps = self._fps = self.fps_meter.tick()
        annotated = None
        if self.window is not None or self.outputs.video is not None:
            with timer.stage("draw"):
                annotated = draw_frame(frame.image, result.faces, self.pictures, fps, self.averages.recent(), self.paused)
        with timer.stage("output"):
            if self.outputs.video is not None:
                self.outputs.video.write(annotated)
        ms = dict(timer.ms)
        ms["total"] = sum(ms.values())
        self.averages.add(ms)
        if self.outputs.json is not None:
            self.outputs.json.write(frame_record(frame.label, result, ms))
        if self.source.still and not self.options.quiet:
            print(describe_faces(frame.label, result), flush=True)
        return annotated

    def _react_to_keys(self, annotated: np.ndarray) -> bool:
        """Show the frame and act on keys: Esc/q quit (True), s save a card, space pause.

        A still picture stays until a key is pressed; a paused stream keeps its frame on screen
        without reading the source.
        """
        still = self.source.still
        key = self.window.show(annotated, 0 if still else self._playback_wait_ms())
        while True:
            if key in (ESC, ord("q")):
                return True
            if key == ord("s"):
                self._save_card_now()
            elif key == ord(" ") and not still:
                self.paused = not self.paused
            elif still and key != -1:
                return False  # any other key: next picture
            if not still and not self.paused:
                return False
            key = self.window.show(annotated, 0 if still else 50)

    def _playback_wait_ms(self) -> int:
        """How long to wait for a key: a video file plays at its own frame rate, a camera at once."""
        now = time.perf_counter()
        wait = 1
        if not self.source.live and self._last_shown:
            interval_ms = 1000.0 / self.source.fps
            wait = max(1, int(interval_ms - (now - self._last_shown) * 1000.0))
        self._last_shown = now + wait / 1000.0
        return wait

    def _save_card_now(self) -> None:
        if self.card_face is None:
            print("no face seen yet: no card saved", file=sys.stderr)
            return
        path = self.options.card or Path(time.strftime("lookalike_card_%Y%m%d_%H%M%S.png"))
        print(f"card saved: {self.write_card(path)}", file=sys.stderr)

    def write_card(self, path: Path) -> Path:
        if self.card_face is None:
            raise NoFaceError(
                f"no face found in {self.source.name}: no card written "
                "(try another photo, the YuNet detector: python -m edge detector --fetch, or --full-frame)"
            )
        caption = f"{Path(str(self.source.name)).name} | {self.model.variant} model"
        return save_card(path, self.card_face, self.pictures, caption, self.card_frame, self.model.contract)
