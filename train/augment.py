"""Augmentations that push drawings of one art style toward other styles and toward photos.

Runs on uint8 RGB model inputs with NumPy and OpenCV, seeded, so a training run is repeatable.
Each step addresses a gap between the training drawings and what the model must recognise:
- scale and shift (openmoji draws its figures smaller; camera crops frame heads loosely),
- background replaced by colour, gradient or noise (emoji sit on white, camera faces do not),
- colour, brightness, contrast, saturation, hue and greyscale (lighting, white balance, skin tones),
- blur, noise and grain (camera optics and sensor), small rotations (head tilt), mirror.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    flip: float = 0.5
    scale_range: tuple[float, float] = (0.6, 1.15)  # <1 shrinks the figure inside the frame
    shift: float = 0.08  # fraction of the size
    rotate_deg: float = 12.0
    background: float = 0.6  # chance of replacing the white background
    color: float = 0.8
    grayscale: float = 0.15
    blur: float = 0.3
    noise: float = 0.3


def _background_mask(rgb: np.ndarray) -> np.ndarray:
    """Near-white pixels connected to the border: the flattened emoji background, not white hair."""
    h, w = rgb.shape[:2]
    near_white = (rgb.min(axis=2) >= 240).astype(np.uint8)
    mask = np.zeros((h + 2, w + 2), np.uint8)
    fill = near_white.copy()
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, 0), (0, h // 2), (w - 1, h // 2)):
        if fill[y, x] == 1:
            cv2.floodFill(fill, mask, (x, y), 2)
    return fill == 2


def _random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(0, 3)
    if kind == 0:  # flat colour
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (h, w, 3)).copy()
    if kind == 1:  # vertical or horizontal gradient between two colours
        a, b = rng.integers(0, 256, (2, 3)).astype(np.float32)
        t = np.linspace(0.0, 1.0, h if rng.random() < 0.5 else w, dtype=np.float32)
        line = a[None] * (1 - t[:, None]) + b[None] * t[:, None]
        grad = line[:, None, :] if len(t) == h else line[None, :, :]
        return np.broadcast_to(grad, (h, w, 3)).astype(np.uint8).copy()
    # smooth noise: a few random blobs, like an out-of-focus room
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _geometry(rgb: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, border: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = rng.uniform(*cfg.scale_range)
    angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    matrix[:, 2] += rng.uniform(-cfg.shift, cfg.shift, 2) * (w, h)
    fill = tuple(int(v) for v in border)
    return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def _colour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
    hsv[..., 1] *= rng.uniform(0.6, 1.3)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    contrast = rng.uniform(0.7, 1.3)
    brightness = rng.uniform(-35, 35)
    mean = out.mean()
    out = (out - mean) * contrast + mean + brightness
    out *= rng.uniform(0.9, 1.1, 3)  # white balance
    return np.clip(out, 0, 255).astype(np.uint8)


def augment(rgb: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One random variation of a uint8 RGB model input (same shape and dtype)."""
    h, w = rgb.shape[:2]
    out = rgb
    background = None
    if rng.random() < cfg.background:
        mask = _background_mask(out)
        if mask.any():
            background = _random_background(rng, h, w)
            out = np.where(mask[..., None], background, out)
    border = background.reshape(-1, 3).mean(axis=0) if background is not None else np.full(3, 255.0)
    if rng.random() < cfg.flip:
        out = out[:, ::-1]
    out = _geometry(np.ascontiguousarray(out), rng, cfg, border)
    if rng.random() < cfg.color:
        out = _colour(out, rng)
    if rng.random() < cfg.grayscale:
        grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        out = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    if rng.random() < cfg.blur:
        sigma = rng.uniform(0.5, 2.0)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < cfg.noise:
        noise = rng.normal(0.0, rng.uniform(3, 12), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out


def augment_batch(images: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    return np.stack([augment(img, rng, cfg) for img in images])


def pixel_noise(images: np.ndarray, amplitude: int, rng: np.random.Generator) -> np.ndarray:
    """``images`` (uint8) with every pixel level moved by a whole number drawn uniformly from
    [-amplitude, amplitude], clipped to 0..255: a camera's or an encoder's least-significant-bit
    noise. Training copies with it teach the head answers that survive it."""
    if amplitude < 1:
        raise ValueError(f"pixel noise amplitude must be 1 or more, not {amplitude}")
    moved = images.astype(np.int16) + rng.integers(-amplitude, amplitude + 1, images.shape, dtype=np.int16)
    return np.clip(moved, 0, 255).astype(np.uint8)
