"""The input contract shared by train, convert and edge.

Train/serve skew (BGR instead of RGB, [0, 1] instead of [-1, 1], another crop or resize) is the
classic bug of a camera classifier. Everything the model assumes about its input is therefore
defined here once, written into every artifact (model card, TFLite sidecar) and read back from the
artifact on the device. This module imports only NumPy and OpenCV, so the device can use it.

What the model sees:
- a square RGB image of ``input_size`` pixels, uint8 values 0..255 (the model itself applies the
  MobileNetV2 scaling x / 127.5 - 1, so nothing outside the model can get the range wrong);
- for a camera face: a square around the detected face box, ``face_scale`` times its size and
  shifted up by ``face_shift_y`` of its height so hair and headwear are in frame, the way an emoji
  character fills its picture; borders outside the frame are replicated;
- for a whole picture on a plain white background (a drawing): the square around its figure, with
  ``content_margin`` of the figure's size on each side, padded with white; the art styles draw their
  figures at different sizes within the picture, and this takes that difference away (measured
  leave-one-style-out: the mean top-1 rose by 4 to 5 points in every column, see the README).
  Any other whole picture (a photo, a camera frame): its centre square;
- resized with area interpolation when shrinking, linear when enlarging;
- face crops (not whole pictures) scaled to a fixed mean pixel value, so lighting and exposure
  do not change the answer.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

# 2: the optional third output ``traits`` (face-trait probabilities) with its names and thresholds.
# 3: ``content_margin``: a drawing on white is cut to its figure.
CONTRACT_VERSION = 3
# A picture's background counts as plain white when this share of its border pixels is at least
# WHITE_LEVEL in every channel (a photo or a camera frame has hardly any such pixels; a drawing whose
# figure touches the edges still has: 44% at the least among the emoji styles here, where 70% of
# twemoji's pictures touch them); the figure is every pixel below WHITE_LEVEL in some channel.
WHITE_LEVEL = 240
WHITE_BORDER_SHARE = 0.25
OUTPUT_NAMES = ("probabilities", "embedding")
TRAITS_OUTPUT = "traits"


@dataclass(frozen=True)
class InputContract:
    """What a lookalike model expects and returns; serialised into every artifact."""

    labels: tuple[str, ...]
    input_size: int = 224
    channel_order: str = "RGB"
    pixel_dtype: str = "uint8"
    pixel_range: tuple[float, float] = (0.0, 255.0)
    # Scaling applied inside the model (first layer): x * scale + offset -> [-1, 1].
    model_scaling: tuple[float, float] = (1.0 / 127.5, -1.0)
    face_scale: float = 2.0
    face_shift_y: float = -0.15
    # Face crops are scaled so their mean pixel value is this: the answer should not change with
    # the room's lighting or the camera's exposure. None leaves crops as they are.
    face_pixel_mean: float | None = 120.0
    # A drawing on white is cut to the square around its figure with this margin (a share of the
    # figure's larger side, on each side). None: every whole picture gives its centre square.
    content_margin: float | None = 0.08
    embedding_dim: int | None = None  # known once the model is built (training sets it); every artifact has it
    outputs: tuple[str, ...] = OUTPUT_NAMES
    # Face traits the model reads (its ``traits`` output, probabilities 0..1 in this order) and the
    # probability from which each counts as present; empty when the model has no trait head.
    traits: tuple[str, ...] = ()
    trait_thresholds: tuple[float, ...] = ()
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise ValueError("a lookalike model needs at least two classes")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("class labels must be unique")
        if self.input_size < 32:
            raise ValueError(f"input size {self.input_size} is too small (at least 32)")
        if self.channel_order != "RGB":
            raise ValueError(f"unsupported channel order {self.channel_order!r}")
        if self.content_margin is not None and not 0.0 <= self.content_margin <= 1.0:
            raise ValueError(f"content_margin must be between 0 and 1, got {self.content_margin}")
        if len(self.traits) != len(self.trait_thresholds):
            raise ValueError(f"{len(self.traits)} traits but {len(self.trait_thresholds)} thresholds")
        if bool(self.traits) != (TRAITS_OUTPUT in self.outputs):
            raise ValueError("the traits output and the trait names must come together")

    @property
    def has_traits(self) -> bool:
        return bool(self.traits)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        data["preprocessing"] = (
            f"RGB uint8 {self.input_size}x{self.input_size}; inside the model: "
            f"x / 127.5 - 1 (MobileNetV2 range [-1, 1])"
        )
        data["crop"] = (
            f"square around the face box, {self.face_scale}x its size, shifted by "
            f"{self.face_shift_y} of its height, borders replicated"
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "InputContract":
        if not isinstance(data, dict):
            raise ValueError("input contract must be a JSON object")
        version = data.get("version")
        if version != CONTRACT_VERSION:
            raise ValueError(
                f"input contract version {version!r} is not supported (expected {CONTRACT_VERSION}): "
                "the model comes from another version of this project, run 'make train' and 'make convert' again"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        # Every field is read from the artifact, none filled in from this code's defaults: a default
        # that changed since the artifact was written would silently change what the model is fed.
        missing = sorted(names - set(data))
        if missing:
            raise ValueError(f"input contract lacks {', '.join(missing)}: run 'make train' and 'make convert' again")
        kwargs = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items() if key in names}
        if not isinstance(kwargs["embedding_dim"], int) or kwargs["embedding_dim"] < 1:
            raise ValueError(f"input contract has no usable embedding_dim ({kwargs['embedding_dim']!r})")
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB image to size x size with the contract's interpolation."""
    h, w = rgb.shape[:2]
    if h == size and w == size:
        return rgb
    shrinking = size < max(h, w)
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


def center_square(rgb: np.ndarray) -> np.ndarray:
    """The largest centred square of an image (for whole pictures that are not square)."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top = (h - side) // 2
    left = (w - side) // 2
    return rgb[top : top + side, left : left + side]


def content_square(image: np.ndarray, margin: float) -> np.ndarray | None:
    """The square around the figure of a picture on a plain white background, ``margin`` of the
    figure's larger side added on each side and padded with white; None when the background is not
    plain white (a photo, a camera frame) or there is no figure. Channel order does not matter."""
    h, w = image.shape[:2]
    ring = np.concatenate([image[:2].reshape(-1, 3), image[-2:].reshape(-1, 3),
                           image[:, :2].reshape(-1, 3), image[:, -2:].reshape(-1, 3)])
    if np.mean((ring >= WHITE_LEVEL).all(axis=1)) < WHITE_BORDER_SHARE:
        return None
    figure = (image < WHITE_LEVEL).any(axis=2)
    rows, cols = np.flatnonzero(figure.any(axis=1)), np.flatnonzero(figure.any(axis=0))
    if not len(rows):
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = max(1, int(round(max(bottom - top, right - left) * (1.0 + 2.0 * margin))))
    y0 = int(round((top + bottom - side) / 2.0))
    x0 = int(round((left + right - side) / 2.0))
    out = np.full((side, side, 3), 255, np.uint8)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y0 + side, h), min(x0 + side, w)
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def prepare_image(rgb: np.ndarray, contract: InputContract) -> np.ndarray:
    """A whole picture (a character image, a pre-cropped face) -> model input, uint8 RGB: a drawing
    on white cut to its figure (``content_margin``), anything else its centre square."""
    _check_rgb(rgb)
    square = None if contract.content_margin is None else content_square(rgb, contract.content_margin)
    return resize_square(center_square(rgb) if square is None else square, contract.input_size)


def face_crop_box(
    box: Sequence[float], contract: InputContract
) -> tuple[int, int, int]:
    """Square crop (left, top, side) in frame pixels for a face box (x, y, w, h).

    The square may extend outside the frame; ``crop_face`` replicates the borders there.
    """
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box {tuple(box)} has no area")
    side = max(w, h) * contract.face_scale
    cx = x + w / 2.0
    cy = y + h / 2.0 + contract.face_shift_y * h
    left = int(round(cx - side / 2.0))
    top = int(round(cy - side / 2.0))
    return left, top, max(1, int(round(side)))


def crop_face(
    rgb: np.ndarray, box: Sequence[float], contract: InputContract
) -> np.ndarray:
    """Face box in a frame -> model input (uint8 RGB, input_size square), framed per contract."""
    _check_rgb(rgb)
    left, top, side = face_crop_box(box, contract)
    h, w = rgb.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, w), min(top + side, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {tuple(box)} lies outside the {w}x{h} frame")
    patch = rgb[y0:y1, x0:x1]
    pad = (y0 - top, top + side - y1, x0 - left, left + side - x1)
    if any(pad):
        patch = cv2.copyMakeBorder(patch, *pad, borderType=cv2.BORDER_REPLICATE)
    return normalise_exposure(resize_square(patch, contract.input_size), contract.face_pixel_mean)


def normalise_exposure(image: np.ndarray, target_mean: float | None) -> np.ndarray:
    """Scale pixel values so their mean is ``target_mean`` (same factor for every channel, so the
    channel order does not matter); a black image stays black."""
    if target_mean is None:
        return image
    mean = float(image.mean())
    if mean < 1.0:
        return image
    scaled = image.astype(np.float32) * (float(target_mean) / mean)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


JPEG_START = b"\xff\xd8"


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as uint8 RGB, upright; raise ValueError with the path if it cannot be decoded.

    A JPEG is decoded in colour, which makes OpenCV turn it as its EXIF orientation tag says (phones
    store portraits sideways with that tag); other formats keep every channel (a PNG's transparency
    goes onto white in ``to_rgb``) and are read as stored."""
    data = np.fromfile(str(path), dtype=np.uint8)
    jpeg = data[:2].tobytes() == JPEG_START
    image = cv2.imdecode(data, cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"cannot decode image {path}")
    return to_rgb(image)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV image (gray, BGR or BGRA) -> uint8 RGB; transparent pixels go onto white."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        bgr = image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return cv2.cvtColor(np.round(bgr).astype(np.uint8), cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (h, w, 3), got {getattr(rgb, 'shape', None)}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {rgb.dtype}")
