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


def _with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """A JPEG with an EXIF APP1 segment whose IFD0 holds only the orientation tag (0x0112)."""
    import struct

    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
            + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0))
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def test_read_rgb_turns_a_phone_photo_upright(tmp_path):
    import cv2

    from edge.contract import read_rgb

    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = (0, 0, 255)  # BGR: the left half red, as the sensor saw it
    jpeg = cv2.imencode(".jpg", stored)[1].tobytes()
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(jpeg)
    assert read_rgb(str(plain)).shape == (40, 80, 3)
    turned = tmp_path / "turned.jpg"
    turned.write_bytes(_with_orientation(jpeg, 6))  # "rotate 90 degrees clockwise to view"
    rgb = read_rgb(str(turned))
    assert rgb.shape == (80, 40, 3)
    assert rgb[2, 20, 0] > 200 and rgb[-3, 20, 0] < 50  # the red half is now on top, in RGB order


def test_a_sideways_phone_portrait_finds_its_face(portrait, tiny_models, tmp_path):
    import cv2

    from edge.live import RunOptions, run

    photo = cv2.imread(str(portrait))
    sideways = cv2.rotate(photo, cv2.ROTATE_90_COUNTERCLOCKWISE)  # stored as a phone stores a portrait
    path = tmp_path / "portrait.jpg"
    path.write_bytes(_with_orientation(cv2.imencode(".jpg", sideways)[1].tobytes(), 6))
    summary = run(RunOptions(source=str(path), models=tiny_models, show_window=False, quiet=True))
    assert summary.frames == 1 and summary.frames_with_faces == 1


def test_names_outside_ascii_are_drawn_as_close_as_the_font_allows():
    from edge.overlay import drawable

    assert drawable("Zoë") == "Zoe" and drawable("Ñandú_Ærø") == "Nandu_?r?" and drawable("孫悟空") == "???"
    assert drawable("plain name") == "plain name"


def test_a_contract_field_missing_from_an_artifact_is_refused_not_defaulted():
    import json

    import pytest

    data = json.loads(InputContract(labels=("a", "b"), input_size=48, embedding_dim=16).to_json())
    assert InputContract.from_dict(data).face_pixel_mean == 120.0
    for field in ("face_pixel_mean", "embedding_dim", "face_scale"):
        partial = {k: v for k, v in data.items() if k != field}
        with pytest.raises(ValueError, match=f"lacks {field}"):
            InputContract.from_dict(partial)
    with pytest.raises(ValueError, match="embedding_dim"):
        InputContract.from_dict(data | {"embedding_dim": None})


def test_a_drawing_on_white_is_cut_to_its_figure_and_a_photo_keeps_its_centre_square():
    from edge.contract import center_square, prepare_image, resize_square

    contract = InputContract(labels=("a", "b"), input_size=64, embedding_dim=4)
    drawing = np.full((200, 300, 3), 255, np.uint8)
    drawing[40:80, 200:230] = (10, 120, 200)  # a small figure off centre, 40 tall and 30 wide
    prepared = prepare_image(drawing, contract)
    figure = (prepared < 240).any(axis=2)
    rows, cols = np.flatnonzero(figure.any(axis=1)), np.flatnonzero(figure.any(axis=0))
    # The figure's larger side fills the square but for the margin (0.08 of it on each side), centred.
    assert abs((rows[-1] - rows[0] + 1) - 64 / 1.16) <= 2 and abs((rows[0] + rows[-1]) / 2 - 31.5) <= 1.5
    assert abs((cols[0] + cols[-1]) / 2 - 31.5) <= 1.5
    # A photo (no white border) and a contract without a margin: the centre square, as before.
    photo = np.random.default_rng(0).integers(0, 200, (200, 300, 3), dtype=np.uint8)
    np.testing.assert_array_equal(prepare_image(photo, contract), resize_square(center_square(photo), 64))
    plain = dataclasses.replace(contract, content_margin=None)
    np.testing.assert_array_equal(prepare_image(drawing, plain), resize_square(center_square(drawing), 64))
    blank = np.full((50, 50, 3), 255, np.uint8)  # nothing drawn: the centre square
    np.testing.assert_array_equal(prepare_image(blank, contract), resize_square(blank, 64))


def test_a_drawing_that_touches_the_edges_gets_its_margin_too():
    """A figure filling its picture edge to edge (70% of the twemoji pictures) is framed like the rest."""
    import cv2

    from edge.contract import prepare_image

    contract = InputContract(labels=("a", "b"), input_size=116, embedding_dim=4)
    drawing = np.full((100, 100, 3), 255, np.uint8)
    cv2.circle(drawing, (50, 50), 50, (250, 200, 0), -1)  # touches all four edges
    figure = (prepare_image(drawing, contract) < 240).any(axis=2)
    cols = np.flatnonzero(figure.any(axis=0))
    assert abs((cols[-1] - cols[0] + 1) - 100) <= 2  # 116 / 1.16: the margin on each side
