"""The contract's face crop: framing and exposure, as the device applies them."""
from __future__ import annotations

import dataclasses

import numpy as np

from edge.contract import InputContract, crop_face, normalise_exposure


def photo(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(30, 200, (120, 160, 3), dtype=np.uint8)


def test_face_crops_do_not_depend_on_exposure():
    contract = InputContract(labels=("a", "b"), input_size=48)
    image = photo()
    box = (50, 30, 40, 40)
    normal = crop_face(image, box, contract).astype(int)
    darker = crop_face((image * 0.9).astype(np.uint8), box, contract).astype(int)
    assert abs(normal.mean() - contract.face_pixel_mean) < 1.0
    assert np.abs(normal - darker).max() <= 3  # rounding only
    raw = dataclasses.replace(contract, face_pixel_mean=None)
    assert np.abs(crop_face(image, box, raw).astype(int) - crop_face((image * 0.9).astype(np.uint8), box, raw).astype(int)).max() > 10


def test_exposure_normalisation_keeps_black_black_and_ignores_channel_order():
    black = np.zeros((8, 8, 3), np.uint8)
    assert np.array_equal(normalise_exposure(black, 120.0), black)
    image = photo(1)[:8, :8]
    assert np.array_equal(normalise_exposure(image[:, :, ::-1], 120.0), normalise_exposure(image, 120.0)[:, :, ::-1])
    assert normalise_exposure(image, None) is image
