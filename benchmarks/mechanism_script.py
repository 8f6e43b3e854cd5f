"""The paper's Fig. 3 as a plain numpy script: the baseline of ``reproduce.gaussian_mechanism_cpu_s``.

``python -m benchmarks.mechanism_script [--quick] --out DIR`` computes what ``ecosystem
reproduce gaussian-mechanism`` computes, on the same grid (full: 39 coupling values exact,
10 with finite samples, n in {4, 12, 64}, 40 replicates, 100 rounds with 80 of burn-in;
lambda sweeps at t = 0.2 and 0.9), the way issue 17 describes a researcher's script: closed
forms and fixed-point iteration for the exact parts, and for finite samples one loop over
replicates and rounds in which each model's sample mean is imitated by one normal draw
(``N(mean, sigma^2 / n)``) per round instead of drawing and refitting ``n`` samples. It
draws the same three figures. It does not import the engine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.linalg import block_diag
from scipy.optimize import brentq, minimize_scalar

REF = json.loads((Path(__file__).resolve().parents[1] / "ecosystem/data/gaussian_mechanism.json").read_text())
D, SIGMA = 2 * REF["n_blocks"], REF["sigma"]
SHIFT = np.asarray(REF["curation_shift_a"])
GP, GQ = np.asarray(REF["reward_gradient_g_p"]), np.asarray(REF["reward_gradient_g_q"])
ETA_P, ETA_Q = REF["eta_p"], REF["eta_q"]


def coupling(t: float) -> np.ndarray:
    blocks = []
    for beta, psi in zip(REF["block_strengths_beta"], REF["block_rotation_degrees"], strict=True):
        c, s = np.cos(np.radians(psi)), np.sin(np.radians(psi))
        blocks.append(t * beta * np.array([[c, -s], [s, c]]))
    return block_diag(*blocks)


def j_p(theta: np.ndarray) -> float:
    return float(GP @ theta - 0.5 * ETA_P * theta @ theta)


def j_q(phi: np.ndarray) -> float:
    return float(GQ @ phi - 0.5 * ETA_Q * phi @ phi)


def stable(t: float, lam: float, tol: float = 1e-13) -> tuple[np.ndarray, np.ndarray]:
    """Iterate theta <- phi + lam a, phi <- A theta to the fixed point."""
    a_mat = coupling(t)
    theta, phi = np.zeros(D), np.zeros(D)
    for _ in range(100_000):
        new_theta, new_phi = phi + lam * SHIFT, a_mat @ theta
        if max(np.abs(new_theta - theta).max(), np.abs(new_phi - phi).max()) < tol:
            return new_theta, new_phi
        theta, phi = new_theta, new_phi
    raise RuntimeError("no fixed point")


def derivatives(t: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """(dJp/dlambda, dJq/dlambda) by the implicit function theorem, and the raw (first-arrival) effects."""
    a_mat = coupling(t)
    theta, phi = stable(t, lam)
    v = np.linalg.solve(np.eye(D) - a_mat, SHIFT)
    long_run = np.array([(GP - ETA_P * theta) @ v, (GQ - ETA_Q * phi) @ (a_mat @ v)])
    raw = np.array([(GP - ETA_P * theta) @ SHIFT, (GQ - ETA_Q * phi) @ (a_mat @ SHIFT)])
    return long_run, raw


def explicit(t: float, lam: float) -> np.ndarray:
    a_mat = coupling(t)
    v = np.linalg.solve(np.eye(D) - a_mat, SHIFT)
    theta, phi = lam * v, lam * a_mat @ v
    return np.array([(GP - ETA_P * theta) @ v, (GQ - ETA_Q * phi) @ (a_mat @ v)])


def finite_difference(t: float, lam: float, step: float = 1e-3) -> np.ndarray:
    (tp, pp), (tm, pm) = stable(t, lam + step), stable(t, lam - step)
    return np.array([j_p(tp) - j_p(tm), j_q(pp) - j_q(pm)]) / (2 * step)


def simulated(t: float, lam: float, n: int, reps: int, rounds: int, burn: int, rng: np.random.Generator) -> np.ndarray:
    """Mean (J_p, J_q) over rounds after ``burn`` and over replicates; one draw per sample mean."""
    a_mat, noise = coupling(t), SIGMA / np.sqrt(n)
    total = np.zeros(2)
    for _ in range(reps):
        theta, phi = np.zeros(D), np.zeros(D)
        for step in range(rounds):
            theta, phi = (phi + lam * SHIFT + noise * rng.standard_normal(D),
                          a_mat @ (theta + noise * rng.standard_normal(D)))
            if step >= burn:
                total += (j_p(theta), j_q(phi))
    return total / (reps * (rounds - burn))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mechanism_script")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    quick, rng, lam0 = args.quick, np.random.default_rng(0), REF["lambda0"]
    ts = np.linspace(0.05, 1.0, 8 if quick else 39)
    reps, rounds, burn = (8, 40, 30) if quick else (40, 100, 80)
    sizes = (4, 64) if quick else (4, 12, 64)
    theorem, raw = (np.array(v) for v in zip(*(derivatives(t, lam0) for t in ts), strict=True))
    expl = np.array([explicit(t, lam0) for t in ts])
    fd = np.array([finite_difference(t, lam0) for t in ts])
    delta, t_sampled = 0.1, ts[:: 2 if quick else 4]
    sampled = {n: np.array([(simulated(t, lam0 + delta, n, reps, rounds, burn, rng)
                             - simulated(t, lam0 - delta, n, reps, rounds, burn, rng)) / (2 * delta)
                            for t in t_sampled]) for n in sizes}
    flips = np.flatnonzero(np.sign(theorem[:-1, 1]) != np.sign(theorem[1:, 1]))
    sign_change = (brentq(lambda t: derivatives(t, lam0)[0][1], ts[flips[0]], ts[flips[0] + 1], xtol=1e-10)
                   if flips.size else None)
    lams = np.linspace(0.0, 0.8, 17 if quick else 41)
    curves = {}
    for t in (0.2, 0.9):
        exact = np.array([[f(x) for f, x in zip((j_p, j_q), stable(t, lam), strict=True)] for lam in lams])
        lam_s = lams[:: 4 if quick else 5]
        curves[t] = (exact, lam_s, {n: np.array([simulated(t, lam, n, reps, rounds, burn, rng) for lam in lam_s])
                                    for n in (4, 32)})
    j09 = lambda lam, k: (j_p, j_q)[k](stable(0.9, lam)[k])  # noqa: E731
    argmax = [minimize_scalar(lambda lam, k=k: -j09(lam, k), bounds=(0, 0.8), method="bounded",
                              options={"xatol": 1e-10}).x for k in (0, 1)]
    lo = max(argmax[1], 1e-6)
    zero = brentq(lambda lam: j09(lam, 1), lo, 0.8, xtol=1e-12) if j09(lo, 1) * j09(0.8, 1) < 0 else None
    figures(args.out, ts, theorem, expl, fd, raw, t_sampled, sampled, lams, curves)
    (args.out / "summary.json").write_text(json.dumps({
        "dJp_dlambda": theorem[:, 0].tolist(), "dJq_dlambda": theorem[:, 1].tolist(), "sign_change_t": sign_change,
        "argmax_lambda": argmax, "zero_lambda_Jq": zero,
        "finite_sample": {str(n): v.tolist() for n, v in sampled.items()}}, indent=2))


def figures(out: Path, ts, theorem, expl, fd, raw, t_sampled, sampled, lams, curves) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, ax in enumerate(axes):
        ax.plot(ts, theorem[:, k], "k-", lw=2, label="theorem")
        ax.plot(ts, expl[:, k], "c--", label="explicit")
        ax.plot(ts, fd[:, k], "r.", label="finite difference")
        for n, v in sampled.items():
            ax.plot(t_sampled, v[:, k], "o", ms=4, label=f"n={n}")
        ax.legend(fontsize=7)
    fig.savefig(out / "derivatives.png", dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for row, t in enumerate((0.2, 0.9)):
        exact, lam_s, sim = curves[t]
        for k in range(2):
            axes[row, k].plot(lams, exact[:, k], "k-", lw=2, label="exact")
            for n, v in sim.items():
                axes[row, k].plot(lam_s, v[:, k], "o", ms=4, label=f"n={n}")
            axes[row, k].legend(fontsize=7)
    fig.savefig(out / "alignment_vs_lambda.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ts, raw[:, 0], label="raw J_p")
    ax.plot(ts, raw[:, 1], label="raw J_q")
    ax.plot(ts, theorem[:, 1], "k--", label="long-run dJ_q/dlambda")
    ax.legend(fontsize=7)
    fig.savefig(out / "alignment_proxies.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
