"""Real faces as their own domain, so that the lookalike answer does not collapse onto one character.

A model that knows only drawings sees every photo as "a photo" first: all real faces land in one
corner of its feature space, and whichever character lies nearest that corner wins for everyone.
The remedy mirrors what training does for art styles: centre each domain on its own mean. The
device compares a face's embedding minus the mean embedding of real faces with each character's
embedding (centred per art style), by cosine similarity, and turns the similarities into readable
scores with a temperature.

The face mean shipped in ``gallery.npz`` comes from face crops framed the way the camera frames
them: a folder of the user's face photos (``--faces``), or by default the faces that ship inside
scikit-image (100 small LFW faces and the astronaut portrait). Faces in photos are found exactly as
the device finds them in a still picture (``edge.faces.find_faces``, with ``--detector``, by
default the device's ``auto``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from edge.artifacts import IMAGE_SUFFIXES
from edge.contract import InputContract, crop_face, read_rgb
from edge.faces import FaceDetector, find_faces

DEFAULT_TEMPERATURE = 0.05  # cosine similarities -> softmax scores a user can read
LFW_FACES = 100


class FacesError(ValueError):
    """A face folder that cannot be used."""


def package_faces(contract: InputContract, detector: FaceDetector) -> list[np.ndarray]:
    """Face crops from scikit-image's bundled data (tight 25x25 LFW crops and the astronaut)."""
    try:
        import skimage.data
    except ImportError:
        print("warning: scikit-image is not installed: no default face set, the gallery is not centred for faces",
              file=sys.stderr)
        return []
    crops = []
    for face in skimage.data.lfw_subset()[:LFW_FACES]:
        grey = np.round(face * 255).astype(np.uint8)
        rgb = cv2.resize(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), (100, 100), interpolation=cv2.INTER_LINEAR)
        crops.append(crop_face(rgb, (10, 10, 80, 80), contract))  # the crop is the face, eyebrows to chin
    crops += detected_faces([skimage.data.astronaut()], contract, detector)
    return crops


def detected_faces(images: list[np.ndarray], contract: InputContract, detector: FaceDetector) -> list[np.ndarray]:
    crops = []
    for rgb in images:
        for box in find_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), detector):
            crops.append(crop_face(rgb, box, contract))
    return crops


def folder_faces(folder: Path, contract: InputContract, detector: FaceDetector) -> list[np.ndarray]:
    if not folder.is_dir():
        raise FacesError(f"face folder {folder} does not exist")
    images = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            try:
                images.append(read_rgb(path))
            except ValueError:
                print(f"warning: skipping {path}: not a readable image", file=sys.stderr)
    crops = detected_faces(images, contract, detector)
    if not crops:
        raise FacesError(f"no faces found in {folder} (expected photos of people)")
    return crops


def mirrored(crops: list[np.ndarray]) -> list[np.ndarray]:
    """Each crop and its mirror image: the mean should not depend on which way people look."""
    return crops + [np.ascontiguousarray(c[:, ::-1]) for c in crops]
