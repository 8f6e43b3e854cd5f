"""Random streams of several independent runs drawn as one (:mod:`ecosystem.core.replicates`).

A batched kernel (:class:`~ecosystem.core.rounds.RoundKernel` with ``blocks``) stacks the nodes of
several runs ("blocks"); every draw it makes covers entries of several blocks. :class:`Streams`
holds one numpy generator per block, and :meth:`Streams.split` gives, for one draw, a
generator-like :class:`Split` whose methods draw each block's entries from that block's own
generator, in their order: the numbers the block's separate run draws at the same point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Streams:
    """One :class:`numpy.random.Generator` per block of a batched kernel."""

    def __init__(self, generators: Sequence[np.random.Generator]) -> None:
        self.generators = list(generators)

    def split(self, blocks: np.ndarray, rows: np.ndarray) -> Split:
        """The generator of one draw whose entry ``i`` (first axis) belongs to block ``blocks[i]``
        ``(m,)``; ``rows`` ``(B,)``: how many rows (distributions) each block's own draw reads."""
        return Split(self.generators, np.asarray(blocks, dtype=np.int64), np.asarray(rows, dtype=np.int64))


class Split:
    """A generator for one draw on behalf of several blocks (see :meth:`Streams.split`).

    ``random``, ``standard_normal``, ``gumbel`` and ``choice`` take a ``size`` whose first axis has
    one entry per element of ``blocks``; block ``b``'s entries come from its generator in one call
    of the same method (entries of other blocks left out): the numbers of its own run. Families
    that choose how to compute from the number of rows a draw reads use :attr:`rows`.
    """

    def __init__(self, generators: list[np.random.Generator], blocks: np.ndarray, rows: np.ndarray) -> None:
        self.generators, self.blocks, self.rows = generators, blocks, rows
        ordered = bool(np.all(blocks[1:] >= blocks[:-1]))
        order = None if ordered else np.argsort(blocks, kind="stable")
        sorted_blocks = blocks if ordered else blocks[order]
        bounds = np.r_[0, np.flatnonzero(np.diff(sorted_blocks)) + 1, len(blocks)]
        self.parts = [(int(sorted_blocks[a]), slice(a, b) if ordered else order[a:b], b - a)
                      for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True) if b > a]
        """``(block, its entries (a slice or indices), how many)`` per block with entries."""

    def _draw(self, method: str, size: int | tuple[int, ...], dtype: type, **kwargs) -> np.ndarray:
        shape = (size,) if isinstance(size, int | np.integer) else tuple(size)
        if shape[0] != len(self.blocks):
            raise ValueError(f"a split draw needs one entry per block label ({len(self.blocks)}), not {shape[0]}")
        out = np.empty(shape, dtype=dtype)
        fills = method in ("random", "standard_normal")   # these draw into a slice of ``out`` itself
        for block, rows, n in self.parts:
            draw = getattr(self.generators[block], method)
            if fills and isinstance(rows, slice):
                draw(out=out[rows])
            else:
                out[rows] = draw(size=(n, *shape[1:]), **kwargs)
        return out

    def random(self, size: int | tuple[int, ...]) -> np.ndarray:
        """Uniforms on [0, 1)."""
        return self._draw("random", size, float)

    def standard_normal(self, size: int | tuple[int, ...]) -> np.ndarray:
        """Standard normal draws."""
        return self._draw("standard_normal", size, float)

    def gumbel(self, size: int | tuple[int, ...]) -> np.ndarray:
        """Standard Gumbel draws."""
        return self._draw("gumbel", size, float)

    def choice(self, a: int, size: int, p: np.ndarray) -> np.ndarray:
        """Indices in ``range(a)`` drawn with probabilities ``p``."""
        return self._draw("choice", size, np.int64, a=a, p=p)
