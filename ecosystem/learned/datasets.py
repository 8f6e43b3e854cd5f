"""Real data that scikit-learn ships (no downloads), as :class:`~ecosystem.core.learned.Dataset` objects.

- :func:`digits`: the 8x8 handwritten digits, 1797 images, pixel values 0..16;
- :func:`photos`: RGB patches of the two sample photographs (``china.jpg``, ``flower.jpg``),
  values in [0, 1].

Both are deterministic (no random draws); the raw arrays are read once per process. With
``labels = true`` each row ends in its class index (:class:`~ecosystem.learned.conditional.Labelled`,
for class-conditional models): the digit, or the photograph a patch was cut from.
"""

from __future__ import annotations

import functools

import numpy as np

from ecosystem.core.learned import Dataset
from ecosystem.errors import show
from ecosystem.learned._checks import at_least, one_of
from ecosystem.learned.conditional import Labelled
from ecosystem.learned.sklearn import require

IMAGES = ("china", "flower")
"""The sample photographs, in scikit-learn's order."""


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(1797, 64)`` and labels ``(1797,)``, read-only."""
    bunch = require("dataset 'digits'", "sklearn.datasets").load_digits()
    data, target = np.asarray(bunch.data, dtype=float), np.asarray(bunch.target)
    data.flags.writeable = target.flags.writeable = False
    return data, target


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """The photographs ``(427, 640, 3)`` each, values in [0, 1], read-only."""
    images = tuple(np.asarray(i, dtype=float) / 255.0
                   for i in require("dataset 'photos'", "sklearn.datasets").load_sample_images().images)
    for image in images:
        image.flags.writeable = False
    return images


def digits(classes: list | None = None, labels: bool = False) -> Dataset:
    """The digits (rows ``(m, 64)``, bounds ``(0, 16)``, shape ``(8, 8)``) of the labels
    ``classes`` (a list of distinct integers 0..9; None: all ten, 1797 images). ``labels``: a
    :class:`Labelled` dataset, rows ``(m, 65)`` ending in the digit's index in ``classes``."""
    data, target = _digits()
    if classes is None and not labels:
        return Dataset(data, name="digits", bounds=(0.0, 16.0), shape=(8, 8))
    if classes is not None and (
            not isinstance(classes, list) or not classes or len(set(classes)) != len(classes)
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 9 for c in classes)):
        raise ValueError(f"classes: must be a list of distinct integers 0..9, got {show(classes)}")
    keep = list(range(10)) if classes is None else classes
    mine = np.isin(target, keep)
    if not labels:
        return Dataset(data[mine], name="digits", bounds=(0.0, 16.0), shape=(8, 8))
    index = np.zeros(10)
    index[keep] = np.arange(len(keep))
    return Labelled(np.column_stack([data[mine], index[target[mine]]]), name="digits",
                    bounds=(0.0, 16.0), shape=(8, 8), classes=tuple(str(c) for c in keep))


def photos(image: str = "both", patch: int = 4, stride: int = 3, labels: bool = False) -> Dataset:
    """Non-overlapping ``patch`` x ``patch`` RGB patches (rows ``(m, patch * patch * 3)``, a row is a
    ``(patch, patch, 3)`` picture, bounds ``(0, 1)``) on a regular grid of the photograph(s)
    ``image`` (``both``, ``china`` or ``flower``), each first downscaled ``stride``-fold by block
    averaging. The defaults give 1855 patches per photograph. ``labels``: a :class:`Labelled`
    dataset whose rows end in the index of their photograph among those taken (china 0, flower 1)."""
    one_of("image", image, ("both", *IMAGES))
    at_least("patch", patch, 1)
    at_least("stride", stride, 1)
    rows, taken = [], []
    for name, picture in zip(IMAGES, _photos(), strict=True):
        if image not in ("both", name):
            continue
        taken.append(name)
        h, w = picture.shape[0] // stride, picture.shape[1] // stride
        small = picture[:h * stride, :w * stride].reshape(h, stride, w, stride, 3).mean(axis=(1, 3))
        ph, pw = h // patch, w // patch
        if ph == 0 or pw == 0:
            raise ValueError(f"patch: {patch} is larger than the {h}x{w} downscaled photograph")
        grid = small[:ph * patch, :pw * patch].reshape(ph, patch, pw, patch, 3).transpose(0, 2, 1, 3, 4)
        rows.append(grid.reshape(ph * pw, patch * patch * 3))
    if labels:
        rows = [np.column_stack([r, np.full(len(r), k)]) for k, r in enumerate(rows)]
        return Labelled(np.concatenate(rows), name="photos", bounds=(0.0, 1.0), shape=(patch, patch, 3),
                        classes=tuple(taken))
    return Dataset(np.concatenate(rows), name="photos", bounds=(0.0, 1.0), shape=(patch, patch, 3))
