"""Row-local metrics split over two threads (``core.rowwise``) give the bits of one call: the
entropy, the change and a whole round's metrics on random instances (long rows too), with the
helper thread really used; errors and numpy's error state reach the caller; a forked child
works; a multiprocessing child does not split."""

import multiprocessing
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosystem.core import families, metrics, rowwise
from ecosystem.formats.scenario import parse


def _split_everything(mp: pytest.MonkeyPatch) -> None:
    """Every input split, on two cores, whatever its size and this machine."""
    mp.setattr(rowwise, "ENTROPY_MIN_SIZE", 0)
    mp.setattr(rowwise, "ARITHMETIC_MIN_SIZE", 0)
    mp.setattr(rowwise, "_cores", lambda: 2)


@pytest.fixture
def split(monkeypatch):
    _split_everything(monkeypatch)


def _rows(seed: int, n: int, k: int, zeros: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.3), size=n)
    if zeros:
        p[rng.random(p.shape) < 0.2] = 0.0
    return p


def _same_bits_split_or_not(p: np.ndarray, q: np.ndarray) -> None:
    with pytest.MonkeyPatch.context() as mp:
        _split_everything(mp)
        halves = families._sum_plogp(p), metrics.relative_change(p, q)
    assert halves[0].tobytes() == families._plogp_rows(p).tobytes()
    assert halves[1].tobytes() == metrics._relative_change_rows(p, q).tobytes()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 200), k=st.integers(1, 300), zeros=st.booleans())
def test_entropy_and_change_in_halves_are_one_calls(seed, n, k, zeros):
    _same_bits_split_or_not(_rows(seed, n, k, zeros), _rows(seed + 1, n, k, zeros))


@pytest.mark.parametrize("n, k", [(2, 70_000), (3, 44_000), (4, 33_000), (5, 8_193), (7, 20_001)])
def test_long_rows_in_halves_are_one_calls(n, k):
    """numpy sums a lone row of over 8,192 entries in another order: no half has one row."""
    _same_bits_split_or_not(_rows(n, n, k, True), _rows(n + 1, n, k, False))


def test_the_helper_thread_takes_the_first_half(split):
    seen = []

    def f(a):
        seen.append((threading.get_ident(), len(a)))
        return a.sum(axis=1)

    a = np.arange(27.0).reshape(9, 3)
    assert rowwise.rowwise(f, a, min_size=0).tobytes() == a.sum(axis=1).tobytes()
    (first, n1), (second, n2) = sorted(seen, key=lambda s: s[1])
    assert (n1, n2) == (4, 5) and first != second


def test_small_inputs_few_rows_or_one_core_run_in_one_call(monkeypatch):
    calls = []

    def f(a):
        calls.append(threading.get_ident())
        return a[:, 0]

    monkeypatch.setattr(rowwise, "_cores", lambda: 2)
    rowwise.rowwise(f, np.ones((8, 4)), min_size=33)          # below min_size
    rowwise.rowwise(f, np.ones((3, 4)), min_size=0)           # a half would have one row
    monkeypatch.setattr(rowwise, "_cores", lambda: 1)
    rowwise.rowwise(f, np.ones((8, 4)), min_size=0)           # one core
    assert calls == [threading.get_ident()] * 3


def test_a_call_from_the_helper_runs_in_one_call(split):
    def inner(a):
        return a.sum(axis=1)

    def outer(a):
        return rowwise.rowwise(inner, a, min_size=0)   # on the helper: no second hand-off to itself

    a = np.arange(40.0).reshape(8, 5)
    got = []
    caller = threading.Thread(target=lambda: got.append(rowwise.rowwise(outer, a, min_size=0)), daemon=True)
    caller.start()
    caller.join(timeout=30)                      # a hand-off to itself would wait forever
    assert got and got[0].tobytes() == a.sum(axis=1).tobytes()


def test_the_helper_runs_under_the_callers_error_state(split):
    def f(a):
        return np.ones(len(a)) / a[:, 0]

    a = np.ones((8, 2))
    a[:4] = 0.0                                  # only the helper's half divides by zero
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        rowwise.rowwise(f, a, min_size=0)
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")           # the helper's half would warn under numpy's default
        assert np.isinf(rowwise.rowwise(f, a, min_size=0)[:4]).all()


def test_the_first_halfs_error_is_raised_first(split):
    def fails(a):
        raise ValueError(f"rows from {a[0, 0]:.0f}")

    a = np.arange(16.0).reshape(8, 2)
    with pytest.raises(ValueError, match="rows from 0"):
        rowwise.rowwise(fails, a, min_size=0)

    def second_fails(a):
        if a[0, 0] > 0:
            raise ValueError("second half")
        return a[:, 0]

    with pytest.raises(ValueError, match="second half"):
        rowwise.rowwise(second_fails, a, min_size=0)


def _in_child(seed: int) -> bytes:
    rowwise.ENTROPY_MIN_SIZE, rowwise._cores = 0, lambda: 2
    return families._sum_plogp(_rows(seed, 50, 40, True)).tobytes()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")   # the point of the test
def test_a_forked_child_starts_its_own_helper(split):
    families._sum_plogp(_rows(0, 10, 10, False))              # the parent's helper is running
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_in_child, (3,)).get(timeout=60)
    assert got == families._plogp_rows(_rows(3, 50, 40, True)).tobytes()


def test_a_pools_worker_does_not_split():
    """Its siblings use the other cores (a sweep's workers, Dask's)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply_async(rowwise._cores).get(timeout=120) == 1


def test_a_rounds_metrics_split_or_not_are_the_same_bits(monkeypatch):
    data = {"name": "split", "seed": 4, "steps": 3, "mode": "population",
            "space": {"family": "categorical", "grid": {"start": [-1.0], "stop": [1.0], "num": [60]}},
            "rewards": {"a": {"kind": "linear", "weights": [1.0]}, "b": {"kind": "linear", "weights": [-0.5]}},
            "sources": {"real": {"normal": {"mean": [0.0], "var": 0.25}}},
            "topology": {"kind": "barabasi_albert", "n": 40, "m": 2, "directed": True, "real_share": 0.2,
                         "curation_ratio": 0.5, "include_self": True,
                         "curator": {"rule": "luce", "K": 3, "tau": 1.0, "rewards": ["a", "b"]}}}
    frames = []
    for cores in (1, 2):
        _split_everything(monkeypatch)
        monkeypatch.setattr(rowwise, "_cores", lambda cores=cores: cores)
        model = parse(data, origin="<test>").build()
        model.run(3)
        frames.append((model.ecosystem_frame(), model.agents_frame()))
    for one, two in zip(*frames, strict=True):
        assert one.to_csv() == two.to_csv()
