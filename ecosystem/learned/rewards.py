"""Rewards for image data (rows are flattened pictures of a :class:`~ecosystem.core.learned.Dataset`).

- ``ink`` (greyscale): stroke weight, the mean pixel value scaled to [0, 1] by the bounds,
  times ``sign`` (+1 prefers heavy strokes, -1 light) and ``weight``;
- ``warmth`` (RGB): mean red minus mean blue over the picture, scaled by the bounds' width
  (in [-1, 1]; the paper's warm vs cool hues), times ``weight``.

Both subtract an optional realism term: ``realism`` times the Euclidean distance between a
sample's per-channel (mean, standard deviation) over its pixels and the real data's average of
those, in units of the bounds' width. Scores are dimensionless, ``(m,)`` for ``x`` ``(m, d)``.
A reward sees a row's picture only, its first ``prod(shape)`` values (a labelled dataset's class
column after them is ignored: :mod:`ecosystem.learned.conditional`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ecosystem.core.learned import Dataset
from ecosystem.core.rewards import Reward
from ecosystem.learned._checks import at_least, one_of


def channel_stats(x: np.ndarray, channels: int) -> np.ndarray:
    """Per-channel mean and standard deviation over the pixels of each row of ``x`` ``(m, d)``
    (channel last): ``(m, 2 * channels)``, means first."""
    pixels = np.atleast_2d(x).reshape(len(np.atleast_2d(x)), -1, channels)
    return np.concatenate([pixels.mean(axis=1), pixels.std(axis=1)], axis=1)


@dataclass(eq=False)
class ImageReward(Reward):
    """A preference over pictures minus ``realism`` times the distance of their channel statistics
    (:func:`channel_stats`) from the data's average ``target`` ``(2 * channels,)``; ``low``, ``high``:
    the value range; ``size``: the picture's values at the start of a row (None: the whole row)."""

    low: float
    high: float
    target: np.ndarray
    weight: float = 1.0
    realism: float = 0.0
    name: str = "image"
    size: int | None = None
    channels = 1

    def preference(self, x: np.ndarray) -> np.ndarray:
        """The preference term ``(m,)`` of rows ``x`` ``(m, d)``."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=float))[:, :self.size]
        score = self.preference(x)
        if self.realism:
            gap = np.linalg.norm(channel_stats(x, self.channels) - self.target, axis=1)
            score = score - self.realism * gap / (self.high - self.low)
        return score


@dataclass(eq=False)
class Ink(ImageReward):
    """Stroke weight of greyscale pictures: ``sign * weight * (mean pixel - low) / (high - low)``."""

    sign: int = 1
    name: str = "ink"

    def preference(self, x: np.ndarray) -> np.ndarray:
        return self.sign * self.weight * (x.mean(axis=1) - self.low) / (self.high - self.low)


@dataclass(eq=False)
class Warmth(ImageReward):
    """Warm vs cool hues of RGB pictures: ``weight * (mean R - mean B) / (high - low)``."""

    name: str = "warmth"
    channels = 3

    def preference(self, x: np.ndarray) -> np.ndarray:
        pixels = x.reshape(len(x), -1, 3)
        return self.weight * (pixels[:, :, 0].mean(axis=1) - pixels[:, :, 2].mean(axis=1)) / (self.high - self.low)


def _image_reward(cls: type[ImageReward], space: Dataset, weight: float, realism: float, **extra) -> ImageReward:
    """``cls`` on the pictures of ``space`` (its bounds, else its data's range; its average channel statistics)."""
    size = None if space.shape is None else math.prod(space.shape)
    pictures = space.data[:, :size]
    low, high = space.bounds if space.bounds is not None else (float(pictures.min()), float(pictures.max()))
    if not high > low:
        raise ValueError(f"kind: {cls.name!r} needs data whose values span a range, dataset '{space.name}' is constant")
    target = channel_stats(pictures, cls.channels).mean(axis=0)
    return cls(float(low), float(high), target, weight=float(weight), realism=float(at_least("realism", realism, 0)),
               size=size, **extra)


def ink(space: Dataset, sign: int = 1, weight: float = 1.0, realism: float = 0.0) -> Ink:
    """The ``ink`` reward on the greyscale pictures of ``space``."""
    if space.shape is not None and len(space.shape) != 2:
        raise ValueError(f"kind: 'ink' needs greyscale pictures, dataset '{space.name}' has {space.shape} rows")
    return _image_reward(Ink, space, weight, realism, sign=one_of("sign", sign, (1, -1)))


def warmth(space: Dataset, weight: float = 1.0, realism: float = 0.0) -> Warmth:
    """The ``warmth`` reward on the RGB pictures of ``space``."""
    if space.shape is None or space.shape[-1] != 3:
        raise ValueError(f"kind: 'warmth' needs RGB pictures, dataset '{space.name}' rows are "
                         f"{'not pictures' if space.shape is None else space.shape}")
    return _image_reward(Warmth, space, weight, realism)
