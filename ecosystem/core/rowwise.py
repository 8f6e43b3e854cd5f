"""Row-local numpy work split between this thread and one helper thread, with the numbers of one call.

A function ``f`` qualifies when each row of its result is made from the same rows of its
inputs alone (elementwise ufuncs, row sums with ``np.einsum``) and it calls no BLAS: its
two halves then give the bits of one call, and BLAS's own threads (whose count decides
how BLAS sums) are left alone. numpy releases the GIL inside such loops, so the halves
run on two cores at once.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MIN_SIZE = 1 << 17
"""Inputs with fewer numbers run in one call: handing half to the helper costs 0.1-0.5 ms,
about what an entropy of this many numbers takes (2.5 ms for ``2**18``, measured)."""

_helper: ThreadPoolExecutor | None = None
_HELPER_NAME = "ecosystem-rowwise"


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _forget_helper() -> None:
    """In a forked child: the parent's helper thread is not there, so start a new one when needed."""
    global _helper
    _helper = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


def rowwise(f: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """``f(*arrays)`` for a row-local, BLAS-free ``f`` (see the module docstring), the first
    halves of the rows on the helper thread when the first array is large and there are two
    cores. The arrays share their first axis; the helper sees the caller's numpy error state
    (and a call from the helper itself runs in one call)."""
    global _helper
    first = arrays[0]
    if (first.size < MIN_SIZE or len(first) < 2 or _cores() < 2
            or threading.current_thread().name.startswith(_HELPER_NAME)):
        return f(*arrays)
    if _helper is None:
        _helper = ThreadPoolExecutor(1, thread_name_prefix=_HELPER_NAME)
    half = len(first) // 2
    top = _helper.submit(contextvars.copy_context().run, f, *(a[:half] for a in arrays))
    bottom = f(*(a[half:] for a in arrays))
    return np.concatenate([top.result(), bottom])
