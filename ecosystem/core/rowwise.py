"""Row-local numpy work split between this thread and one helper thread, with the numbers of one call.

A function ``f`` qualifies when each row of its result ``(N, ...)`` is made from the same rows
of its inputs ``(N, ...)`` alone (elementwise ufuncs, row sums with ``np.einsum``) and it calls
no BLAS: its two halves then give the bits of one call, and BLAS's own threads (whose count
decides how BLAS sums) are left alone. numpy releases the GIL inside such loops, so the halves
run on two cores at once. Each half keeps at least two rows: numpy sums a lone row of over
8,192 entries in another order.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

ENTROPY_MIN_SIZE = 1 << 17
"""Fewest numbers for which an entropy (a ``log`` each) is split: 1.3 ms in one call here,
0.8 ms split; handing half to the helper costs 0.2-0.4 ms on a VM."""
ARITHMETIC_MIN_SIZE = 1 << 19
"""The same for a few arithmetic passes (the relative change: 1.2 ms in one call at this size)."""

_helper: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()
_HELPER_NAME = "ecosystem-rowwise"


def _cores() -> int:
    """The cores this process may use alone: 1 in a multiprocessing child (a process pool's or
    Dask's worker, whose siblings use the other cores), else the cores it may run on."""
    if multiprocessing.parent_process() is not None:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _forget_helper() -> None:
    """In a forked child: the parent's helper thread is not there, so start a new one when needed."""
    global _helper, _helper_lock
    _helper, _helper_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


def _with_error_state(state: dict, f: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """``f(*arrays)`` under the caller's numpy error state ``state`` (:func:`np.geterr`)."""
    with np.errstate(**state):
        return f(*arrays)


def _submit(f: Callable[..., np.ndarray], *arrays: np.ndarray) -> Future | None:
    """``f(*arrays)`` on the helper (started on first use); None once the interpreter is shutting down."""
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = ThreadPoolExecutor(1, thread_name_prefix=_HELPER_NAME)
        try:
            return _helper.submit(_with_error_state, np.geterr(), f, *arrays)
        except RuntimeError:         # "cannot schedule new futures after (interpreter) shutdown"
            return None


def rowwise(f: Callable[..., np.ndarray], *arrays: np.ndarray, min_size: int) -> np.ndarray:
    """``f(*arrays)`` for a row-local, BLAS-free ``f`` returning an array ``(N, ...)`` (see the
    module docstring); the first half of the rows on the helper thread when the first array
    ``(N, ...)`` holds at least ``min_size`` numbers, ``N >= 4`` and this process has two cores.

    The arrays share their first axis. The helper runs under the caller's numpy error state;
    an error of the first half is raised before one of the second, as one call would; a call
    from the helper itself, or during interpreter shutdown, runs in one call.
    """
    first = arrays[0]
    if (first.size < min_size or len(first) < 4 or _cores() < 2
            or threading.current_thread().name.startswith(_HELPER_NAME)):
        return f(*arrays)
    half = len(first) // 2
    top = _submit(f, *(a[:half] for a in arrays))
    if top is None:
        return f(*arrays)
    try:
        bottom = f(*(a[half:] for a in arrays))
    except BaseException:
        if top.exception() is None:  # waits: the helper no longer reads the inputs
            raise
        raise top.exception() from None
    return np.concatenate([top.result(), bottom])
