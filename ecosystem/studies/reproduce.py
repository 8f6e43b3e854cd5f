"""Reproductions of known results, each built as scenarios run through the engine.

``ecosystem reproduce NAME --out DIR`` writes ``DIR/summary.json``, the arrays its figures are
drawn from (``DIR/figures.npz``: :func:`ecosystem.formats.figures.save_data`, no pickles) and the
figures, drawn from that file by :data:`FIGURES` (which ``ecosystem plot DIR`` calls again):

- ``gaussian-mechanism``: the paper's exactly solvable two-model Gaussian mechanism
  (THEORY.md section 4, its Fig. 3);
- ``two-model-conflict``: the discrete analogue of the paper's conflicting-preference study;
- ``ferbach``: one model, a ball reward: pure curation collapses onto the ball, real data
  keeps it stable (THEORY.md section 1);
- ``collapse``: the Gaussian refit loop, replace vs accumulate vs real data (section 2);
- ``web-dynamics``: models writing to and reading from one shared pool homogenise (section 5).

``quick=True`` shrinks grids, replicates and rounds (for tests); the numbers in the
summary keep their meaning. The folder is written all or nothing
(:func:`ecosystem.formats.files.staged`) and ``summary.json`` follows the rule for
non-finite numbers of :mod:`ecosystem.formats.files`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.linalg import block_diag
from scipy.optimize import brentq, minimize_scalar

from ecosystem import analysis
from ecosystem.analysis.intervals import t_half_width
from ecosystem.core import metrics
from ecosystem.core.replicates import ReplicateBatch
from ecosystem.formats import figures
from ecosystem.formats.files import staged, to_json
from ecosystem.formats.scenario import parse
from ecosystem.studies import conditional_llm as llm
from ecosystem.studies import learned_conflict as learned

plt = figures.plt


# --------------------------------------------------------------------------- gaussian mechanism


def mechanism_data() -> dict:
    """The paper's mechanism parameters (``gaussian_mechanism.json``, shipped with the package)."""
    return json.loads(resources.files("ecosystem").joinpath("data/gaussian_mechanism.json").read_text())


def coupling(ref: dict, t: float) -> np.ndarray:
    """``A(t) = blockdiag(t beta_b R(psi_b))``, ``(24, 24)``."""
    blocks = []
    for beta, psi in zip(ref["block_strengths_beta"], ref["block_rotation_degrees"], strict=True):
        c, s = np.cos(np.radians(psi)), np.sin(np.radians(psi))
        blocks.append(t * beta * np.array([[c, -s], [s, c]]))
    return block_diag(*blocks)


def mechanism_scenario(ref: dict, t: float, lam: float, n: int | None = None, replicates: int = 1,
                       seed: int = 0) -> dict:
    """Scenario data: theta trains on phi's outputs, a share ``lam`` curated (mean shift ``a``);
    phi trains on theta's outputs mapped by ``A(t)``. Mean-only Gaussians, covariance
    ``sigma^2 I``; curation is the tilt by the linear reward ``a . x / sigma^2``, which shifts
    the mean by exactly ``a``. ``n`` samples per round (sample mode) or exact (None)."""
    d, sigma = 2 * ref["n_blocks"], ref["sigma"]
    a = np.asarray(ref["curation_shift_a"])
    data = {
        "name": "gaussian-mechanism", "seed": seed, "mode": "population" if n is None else "sample",
        "space": {"family": "gaussian", "dim": d, "covariance": "fixed"},
        "rewards": {
            "p": {"kind": "quadratic", "g": ref["reward_gradient_g_p"], "eta": ref["eta_p"]},
            "q": {"kind": "quadratic", "g": ref["reward_gradient_g_q"], "eta": ref["eta_q"]},
            "shift": {"kind": "linear", "weights": (a / sigma**2).tolist()},
        },
        "models": {}, "curators": {}, "flows": [],
    }
    matrix = coupling(ref, t).tolist()
    for r in range(replicates):
        th, ph, users = (f"theta{r}", f"phi{r}", f"users{r}") if replicates > 1 else ("theta", "phi", "users")
        for name, reward in ((th, "p"), (ph, "q")):
            data["models"][name] = {"init": {"mean": [0.0] * d, "var": sigma**2}, "eval_reward": reward,
                                    "sample_size": n or 1}
        data["curators"][users] = {"curates": ph, "rule": "tilt", "tau": 1.0, "reward": "shift"}
        data["flows"] += [
            {"from": ph, "to": th, "weight": 1.0 - lam},
            {"from": users, "to": th, "weight": lam},
            {"from": th, "to": ph, "weight": 1.0, "transform": {"matrix": matrix, "offset": [0.0] * d}},
        ]
    return data


def _paper_j(model, rows: np.ndarray, groups: list | None = None) -> np.ndarray:
    """The paper's alignment ``(N,)``: each model's reward at its mean, ``J(theta) = g.theta -
    eta/2 |theta|^2``, each row's as alone (:meth:`~ecosystem.core.rewards.Quadratic.alone`;
    a batched product would change the last bits); ``groups``: :func:`_reward_rows` of the model."""
    mean, out = rows[:, :model.family.dim], np.full(len(rows), np.nan)
    for reward, idx in _reward_rows(model) if groups is None else groups:
        out[idx] = reward.alone(mean[idx])
    return out


def _reward_rows(model) -> list[tuple]:
    """Each users' reward of ``model`` with its models' rows, as index arrays (the reward reads a
    contiguous copy of them: a strided view would take another matrix product)."""
    every = np.arange(len(model.eval_rewards))
    return [(reward, every[idx]) for reward, idx in metrics.by_reward(model.eval_rewards)]


def _exact(ref: dict, t: float, lam: float) -> tuple:
    model = parse(mechanism_scenario(ref, t, lam)).build()
    return model, analysis.stable_point(model)


def _theorem(ref: dict, t: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """(dJ_p/dlambda, dJ_q/dlambda) by the implicit function theorem, and the raw effects."""
    model, point = _exact(ref, t, lam)
    inf = analysis.influence(model, point, [analysis.Parameter("curation_ratio", "theta")])
    return inf.influence[:, 0], inf.raw[:, 0]


def _explicit(ref: dict, t: float, lam: float) -> np.ndarray:
    """Closed form: theta* = lam (I - A)^-1 a, phi* = A theta*, differentiated by hand."""
    a_mat, a = coupling(ref, t), np.asarray(ref["curation_shift_a"])
    v = np.linalg.solve(np.eye(len(a)) - a_mat, a)
    theta, phi = lam * v, lam * a_mat @ v
    gp, gq = np.asarray(ref["reward_gradient_g_p"]), np.asarray(ref["reward_gradient_g_q"])
    return np.array([(gp - ref["eta_p"] * theta) @ v, (gq - ref["eta_q"] * phi) @ (a_mat @ v)])


def _finite_difference(ref: dict, t: float, lam: float, step: float = 1e-3) -> np.ndarray:
    model, point = _exact(ref, t, lam)
    return analysis.influence_by_resolving(model, point, analysis.Parameter("curation_ratio", "theta"), step)


def _simulated_j(ref: dict, points: list[tuple[float, float, int]], replicates: int, rounds: int, burn: int,
                 seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Paper-J of (theta, phi) over rounds after ``burn``, sample mode, at each grid point
    ``(t, lambda, n)`` of ``points``: the mean over replicates ``(2,)`` and each replicate's own
    ``(replicates, 2)`` (for intervals).

    A grid point's replicates are stacked as nodes of one model (its generator seeded ``seed``);
    the grid points' models run as one :class:`~ecosystem.core.replicates.ReplicateBatch`: each
    model's numbers are those of ``model.step()`` alone, without metrics and collection, and J is
    read only after the burn-in."""
    models = [parse(mechanism_scenario(ref, t, lam, n, replicates, seed)).build() for t, lam, n in points]
    batch, groups = ReplicateBatch(models), [_reward_rows(m) for m in models]
    total, each = np.zeros((len(models), 2)), np.zeros((len(models), replicates, 2))
    for step in range(rounds):
        batch.advance()
        if step >= burn:
            for i, model in enumerate(models):
                j = _paper_j(model, batch.rows(i), groups[i]).reshape(replicates, 2)
                total[i] += j.mean(axis=0)
                each[i] += j
    return [(mean / (rounds - burn), own / (rounds - burn)) for mean, own in zip(total, each, strict=True)]


def _sampled_derivative(ref: dict, ts: np.ndarray, lam: float, delta: float, sizes: tuple[int, ...],
                        replicates: int, rounds: int, burn: int, seed: int) -> dict[int, np.ndarray]:
    """Per sample size ``n``: ``dJ/dlambda`` at ``lam`` for every coupling of ``ts`` by a central
    difference of sample-mode runs, and the half-width of its 95% interval over the replicates
    (paired: both runs share the seed), ``(value | ci, len(ts), 2)``; all runs in one batch."""
    points = [(t, lam + sign * delta, n) for n in sizes for t in ts for sign in (1, -1)]
    runs = iter(_simulated_j(ref, points, replicates, rounds, burn, seed))
    out = {}
    for n in sizes:
        rows = []
        for _ in ts:
            (up, up_each), (down, down_each) = next(runs), next(runs)
            each = (up_each - down_each) / (2 * delta)
            rows.append(((up - down) / (2 * delta), t_half_width(each)))
        out[n] = np.array(rows).transpose(1, 0, 2)
    return out


def gaussian_mechanism(out: Path, quick: bool = False, seed: int = 0) -> dict:
    """The paper's Fig. 3: influence of theta's curation ratio against the coupling t."""
    ref = mechanism_data()
    lam0 = ref["lambda0"]
    ts = np.linspace(0.05, 1.0, 8 if quick else 39)
    reps, rounds, burn = (8, 40, 30) if quick else (40, 100, 80)
    sizes = (4, 64) if quick else (4, 12, 64)
    theorem, raw = (np.array(v) for v in zip(*(_theorem(ref, t, lam0) for t in ts), strict=True))
    explicit = np.array([_explicit(ref, t, lam0) for t in ts])
    fd = np.array([_finite_difference(ref, t, lam0) for t in ts])
    delta, t_sampled = 0.1, ts[:: 2 if quick else 4]
    sampled = _sampled_derivative(ref, t_sampled, lam0, delta, sizes, reps, rounds, burn, seed)   # (value | ci, t, 2)

    dq = lambda t: _theorem(ref, t, lam0)[0][1]  # noqa: E731
    flips = np.flatnonzero(np.sign(theorem[:-1, 1]) != np.sign(theorem[1:, 1]))
    sign_change = float(brentq(dq, ts[flips[0]], ts[flips[0] + 1], xtol=1e-10)) if flips.size else None

    lams = np.linspace(0.0, 0.8, 17 if quick else 41)
    lam_s = lams[:: 4 if quick else 5]
    runs = iter(_simulated_j(ref, [(t, lam, n) for t in (0.2, 0.9) for n in (4, 32) for lam in lam_s],
                             reps, rounds, burn, seed))   # one batch
    curves, at09 = {}, {}
    for t in (0.2, 0.9):
        exact = np.array([_paper_j(*_model_rows(ref, t, lam)) for lam in lams])
        sim = {n: np.array([next(runs)[0] for _ in lam_s]) for n in (4, 32)}
        curves[t] = (exact, lam_s, sim)
    j_of = lambda lam, k: _paper_j(*_model_rows(ref, 0.9, lam))[k]  # noqa: E731
    for k, key in ((0, "argmax_lambda_Jp"), (1, "argmax_lambda_Jq")):
        at09[key] = float(minimize_scalar(lambda lam, k=k: -j_of(lam, k), bounds=(0, 0.8), method="bounded",
                                          options={"xatol": 1e-10}).x)
    lo = max(at09["argmax_lambda_Jq"], 1e-6)
    at09["zero_lambda_Jq"] = (float(brentq(lambda lam: j_of(lam, 1), lo, 0.8, xtol=1e-12))
                              if j_of(lo, 1) * j_of(0.8, 1) < 0 else None)

    _save_mechanism_data(out, ts, theorem, explicit, fd, raw, t_sampled, sampled, lams, curves)
    return {
        "lambda0": lam0,
        "t": ts.tolist(),
        "dJp_dlambda": theorem[:, 0].tolist(),
        "dJq_dlambda": theorem[:, 1].tolist(),
        "dJq_sign_change_t": sign_change,
        "t0.9": at09,
        "max_abs_error_theorem_vs_explicit": float(np.max(np.abs(theorem - explicit))),
        "max_abs_error_theorem_vs_finite_difference": float(np.max(np.abs(theorem - fd))),
        "finite_sample": {str(n): {"t": t_sampled.tolist(), "dJp_dlambda": v[:, 0].tolist(),
                                   "dJq_dlambda": v[:, 1].tolist(), "dJp_dlambda_ci95": ci[:, 0].tolist(),
                                   "dJq_dlambda_ci95": ci[:, 1].tolist()} for n, (v, ci) in sampled.items()},
        "raw_effect_positive_everywhere": bool(np.all(raw[:, 0] > 0)),
        "settings": {"replicates": reps, "rounds": rounds, "burn_in": burn, "delta_lambda": delta},
    }


def _model_rows(ref: dict, t: float, lam: float) -> tuple:
    model, point = _exact(ref, t, lam)
    return model, point.rows


def _save_mechanism_data(out: Path, ts: np.ndarray, theorem: np.ndarray, explicit: np.ndarray, fd: np.ndarray,
                         raw: np.ndarray, t_sampled: np.ndarray, sampled: dict, lams: np.ndarray, curves: dict) -> None:
    """The mechanism's figure data: the derivatives ``(T, 2)`` against the couplings ``t`` ``(T,)``,
    the finite-sample ones ``(sizes, value | ci, T_s, 2)``, and ``J*(lambda)`` ``(couplings, L, 2)``
    exact and ``(couplings, sizes, L_s, 2)`` sampled."""
    shown = list(curves)
    sizes = list(curves[shown[0]][2])
    figures.save_data(out, {
        "t": ts, "theorem": theorem, "explicit": explicit, "finite_difference": fd, "raw": raw,
        "t_sampled": t_sampled, "sample_sizes": list(sampled), "sampled": np.stack(list(sampled.values())),
        "lambda": lams, "curve_t": shown, "curve_exact": np.stack([curves[t][0] for t in shown]),
        "curve_lambda": np.stack([curves[t][1] for t in shown]), "curve_sizes": sizes,
        "curve_sampled": np.stack([[curves[t][2][n] for n in sizes] for t in shown]),
    })


def _mechanism_figures(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """derivatives, alignment_vs_lambda and alignment_proxies from :func:`_save_mechanism_data`'s arrays."""
    names = ("J_p", "J_q")
    ts, theorem = data["t"], data["theorem"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.plot(ts, theorem[:, k], "k-", lw=2, label="theorem (implicit function)")
        ax.plot(ts, data["explicit"][:, k], ls="--", color=figures.COLOURS[4], lw=1.5, label="explicit derivative")
        ax.plot(ts, data["finite_difference"][:, k], ".", color=figures.COLOURS[1], ms=6, label="finite difference")
        for j, (n, (v, ci)) in enumerate(zip(data["sample_sizes"], data["sampled"], strict=True)):
            ax.errorbar(data["t_sampled"], v[:, k], yerr=ci[:, k], fmt="os^"[j % 3],
                        color=figures.COLOURS[(j + 2) % 7], ms=4, alpha=0.8, capsize=2,
                        label=f"finite sample, $n = {n}$ (95% interval)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("coupling $t$")
        ax.set_ylabel(rf"$\partial {name}^*/\partial\lambda$ at $\lambda_0$")
    axes[0].legend(loc="best")
    figures.panel_letters(axes)
    figures.save(fig, out / "derivatives.png")

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for row, t in enumerate(data["curve_t"]):
        exact, lam_s, sim = data["curve_exact"][row], data["curve_lambda"][row], data["curve_sampled"][row]
        for k, name in enumerate(names):
            ax = axes[row, k]
            ax.plot(data["lambda"], exact[:, k], "k-", lw=2, label="exact")
            for j, (n, v) in enumerate(zip(data["curve_sizes"], sim, strict=True)):
                ax.plot(lam_s, v[:, k], "os"[j % 2], color=figures.COLOURS[(j + 2) % 7], ms=4,
                        label=f"finite sample, $n = {n}$")
            ax.set_title(rf"${name}^*(\lambda)$ at $t = {t}$")
            ax.set_xlabel(r"curation ratio $\lambda$")
            ax.set_ylabel(rf"${name}^*$")
    axes[0, 0].legend(loc="best")
    figures.panel_letters(axes.ravel())
    figures.save(fig, out / "alignment_vs_lambda.png")

    raw = data["raw"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(ts, raw[:, 0], label=r"raw effect on $J_p$ (one round)")
    ax.plot(ts, raw[:, 1], ls="-.", label=r"raw effect on $J_q$ (first arrival)")
    ax.plot(ts, theorem[:, 1], "k--", label=r"long run $\partial J_q^*/\partial\lambda$")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("coupling $t$")
    ax.set_ylabel(r"effect of curation, per unit $\lambda$")
    figures.legend_outside(ax)
    figures.save(fig, out / "alignment_proxies.png")


# --------------------------------------------------------------------------- two-model conflict

SETTINGS = {"A1": (0.0, 0.1), "A2": (0.2, 0.8), "A3": (0.3, 0.4), "A4": (0.7, 0.3), "A5": (0.2, 0.3),
            "A6": (0.7, 0.8)}
"""Cross fractions (theta, phi) inside each model's curated share."""
CONFLICT_RUNS = (("base", 0.5), ("more_curation", 0.6))
"""The two runs of a conflict setting: tag and theta's curated share."""


def conflict_scenario(cross_theta: float, cross_phi: float, curated_theta: float = 0.5) -> dict:
    """theta (users: r = 2x) and phi (users: r = -2x) on 21 points of [-1, 1]; real data and
    curated data only; a fraction of each curated share comes from the other model."""
    c_phi = 0.5
    flows_ = [
        {"from": "real", "to": "theta", "weight": 1 - curated_theta},
        {"from": "users_theta", "to": "theta", "weight": curated_theta * (1 - cross_theta)},
        {"from": "users_phi", "to": "theta", "weight": curated_theta * cross_theta},
        {"from": "real", "to": "phi", "weight": 1 - c_phi},
        {"from": "users_phi", "to": "phi", "weight": c_phi * (1 - cross_phi)},
        {"from": "users_theta", "to": "phi", "weight": c_phi * cross_phi},
    ]
    return {
        "name": "two-model-conflict", "steps": 300,
        "space": {"grid": {"start": -1.0, "stop": 1.0, "num": 21}},
        "rewards": {"warm": {"kind": "linear", "weights": [2.0]}, "cool": {"kind": "linear", "weights": [-2.0]}},
        "sources": {"real": {"normal": {"mean": 0.0, "var": 0.25}}},
        "models": {"theta": {}, "phi": {}},
        "curators": {"users_theta": {"curates": "theta", "K": 6, "tau": 1.0, "reward": "warm"},
                     "users_phi": {"curates": "phi", "K": 6, "tau": 1.0, "reward": "cool"}},
        "flows": [f for f in flows_ if f["weight"] > 0],
    }


def two_model_conflict(out: Path, quick: bool = False, seed: int = 0) -> dict:
    """Stable alignments at the base mix and with theta's curated share raised to 0.6."""
    rounds = 60 if quick else 300
    result, deltas, trajectories = {}, [], {}
    for name, (xt, xp) in SETTINGS.items():
        row = {}
        for tag, share in CONFLICT_RUNS:
            model = parse(conflict_scenario(xt, xp, share)).build()
            model.run(rounds)
            trajectories[name, tag] = model.agents_frame()
            row[f"Jp_{tag}"], row[f"Jq_{tag}"] = (float(v) for v in model.measures["alignment"])
            if tag == "base":
                ana = analysis.analyze(model)
                row["stable_point_Jp"], row["stable_point_Jq"] = (float(v) for v in ana.alignment)
                row["influence"] = ana.to_dict()["influence"]
                row["parameters"] = ana.to_dict()["parameters"]
                row["spectral_radius"] = ana.spectral_radius
                row["backfire"] = ana.to_dict()["backfire"]     # first-arrival > 0, long-run < 0 (THEORY.md 4)
        row["self_negative_influence"] = row["Jp_more_curation"] < row["Jp_base"]   # more curation lowers J_p*
        row["cross_negative_influence"] = row["Jq_more_curation"] < row["Jq_base"]
        result[name] = row
        deltas.append((row["Jp_more_curation"] - row["Jp_base"], row["Jq_more_curation"] - row["Jq_base"]))
    _save_conflict_data(out, np.array(deltas), trajectories)
    return result


def _save_conflict_data(out: Path, deltas: np.ndarray, trajectories: dict) -> None:
    """The conflict figure's data: per setting (name, cross fractions ``(S, 2)``) the changes of the
    stable alignments ``(S, 2)`` and the alignment ``(S, runs, 2 models, rounds + 1)`` over ``step``."""
    frames = [[trajectories[setting, tag] for tag, _ in CONFLICT_RUNS] for setting in SETTINGS]
    figures.save_data(out, {
        "settings": list(SETTINGS), "cross": list(SETTINGS.values()), "shares": [s for _, s in CONFLICT_RUNS],
        "delta": deltas, "step": frames[0][0].loc[frames[0][0]["model"] == "theta", "step"],
        "alignment": [[[f.loc[f["model"] == m, "alignment"] for m in ("theta", "phi")] for f in runs]
                      for runs in frames],
    })


def _conflict_figure(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """(a) the change of each stable alignment when theta's curated share goes from 0.5 to 0.6, per
    setting; (b)-(g) per setting, both models' alignment over rounds at the base and the raised share
    (:func:`_save_conflict_data`'s arrays)."""
    fig = plt.figure(figsize=(13, 5))
    grid = fig.add_gridspec(2, 4, width_ratios=[1.6, 1, 1, 1])
    bars = fig.add_subplot(grid[:, 0])
    settings, deltas = data["settings"], data["delta"]
    x = np.arange(len(settings))
    bars.bar(x - 0.2, deltas[:, 0], 0.4, color=figures.COLOURS[0], label=r"$\Delta J_p$ ($\theta$ curated more)")
    bars.bar(x + 0.2, deltas[:, 1], 0.4, color=figures.COLOURS[1], label=r"$\Delta J_q$ ($\phi$)")
    bars.set_xticks(x, [f"{k}\n{v[0]:g}, {v[1]:g}" for k, v in zip(settings, data["cross"], strict=True)])
    bars.set_xlabel(r"setting (cross fractions $\theta$, $\phi$)")
    bars.axhline(0, color="grey", lw=0.8)
    bars.set_ylabel(r"stable alignment: curated share 0.6 minus 0.5")
    bars.legend(loc="best")
    panels = [bars]
    for k, (setting, runs) in enumerate(zip(settings, data["alignment"], strict=True)):
        ax = fig.add_subplot(grid[k // 3, 1 + k % 3])
        for models, share, style in zip(runs, data["shares"], ("-", "--"), strict=True):
            for j, (alignment, symbol) in enumerate(zip(models, (r"$J_p$", r"$J_q$"), strict=True)):
                ax.plot(data["step"], alignment, ls=style, color=figures.COLOURS[j], label=f"{symbol}, share {share}")
        ax.set_title(setting)
        ax.set_xlabel("round")
        ax.set_ylabel(r"alignment $E[r]$")
        panels.append(ax)
    panels[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figures.panel_letters(panels)
    figures.save(fig, out / "conflict.png")


# --------------------------------------------------------------------------- ferbach


def ferbach_scenario(mode: str, steps: int, seed: int) -> dict:
    """A 2-D mixture of 8 Gaussians on a circle (categorical on a 41 x 41 grid); ball reward
    around one mode. ``pure_curation`` trains only on its own curated outputs;
    ``with_real_data`` takes half real data."""
    centres = [[1.5 * np.cos(k * np.pi / 4), 1.5 * np.sin(k * np.pi / 4)] for k in range(8)]
    mixture = [{"mean": c, "var": 0.06, "weight": 1.0} for c in centres]
    return {
        "name": "ferbach", "mode": mode, "steps": steps, "seed": seed,
        "space": {"grid": {"start": [-2.5, -2.5], "stop": [2.5, 2.5], "num": [41, 41]}},
        "rewards": {"ball": {"kind": "ball", "center": centres[1], "radius": 0.5, "gamma": 5.0}},
        "sources": {"real": {"mixture": mixture}},
        "models": {"pure_curation": {"sample_size": 2000}, "with_real_data": {"sample_size": 2000}},
        "curators": {"users_pure": {"curates": "pure_curation", "K": 4, "reward": "ball"},
                     "users_real": {"curates": "with_real_data", "K": 4, "reward": "ball"}},
        "flows": [{"from": "users_pure", "to": "pure_curation", "weight": 1.0},
                  {"from": "users_real", "to": "with_real_data", "weight": 0.5},
                  {"from": "real", "to": "with_real_data", "weight": 0.5}],
    }


def ferbach(out: Path, quick: bool = False, seed: int = 0) -> dict:
    """Reward and diversity over rounds, both modes; collapse onto the ball without real data."""
    steps = 15 if quick else 60
    modes, summary, shown = ("population", "sample"), {}, {"alignment": [], "diversity": [], "density": []}
    for mode in modes:
        scenario = ferbach_scenario(mode, steps, seed)
        model = parse(scenario).build()
        model.run(steps)
        curves = dict(list(model.agents_frame().groupby("model")))      # model name: its rows
        top = model.family.reward_table(model.rewards["ball"]) >= -1e-12
        for column in ("alignment", "diversity"):
            shown[column].append([df[column] for df in curves.values()])
        final = model.state
        shown["density"].append([final[a.index] for a in model.model_agents])
        summary[mode] = {
            str(a.name): {"reward": a.alignment, "entropy": a.diversity,
                          "mass_on_ball": float(final[a.index][top].sum())}
            for a in model.model_agents
        }
    ball = scenario["rewards"]["ball"]
    figures.save_data(out, shown | {
        "modes": modes, "step": next(iter(curves.values()))["step"], "curve_models": list(curves),
        "map_models": [str(a.name) for a in model.model_agents], "coords": model.family.coords,
        "ball_centre": ball["center"], "ball_radius": ball["radius"]})
    return summary


def _ferbach_figure(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """Reward and entropy over rounds (``alignment``, ``diversity``: ``(modes, models, rounds + 1)``)
    and each model's final distribution (``density`` ``(modes, models, M)`` on ``coords`` ``(M, 2)``)."""
    fig = plt.figure(figsize=(12, 6.5))
    grid = fig.add_gridspec(2, 3, width_ratios=[1.3, 1, 1])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])]
    maps = [fig.add_subplot(grid[r, c]) for r in (0, 1) for c in (1, 2)]
    step = data["step"]
    for row, (mode, style) in enumerate(zip(data["modes"], ("-", "--"), strict=True)):
        for k, name in enumerate(data["curve_models"]):
            label = f"{figures.readable(name)} ({mode})"
            axes[0].plot(step, data["alignment"][row, k], style, color=figures.COLOURS[k], label=label)
            axes[1].plot(step, data["diversity"][row, k], style, color=figures.COLOURS[k], label=label)
        for k, name in enumerate(data["map_models"]):
            _density_map(maps[2 * row + k], data["coords"], data["density"][row, k], data["ball_centre"],
                         float(data["ball_radius"]), f"{figures.readable(name)}, {mode}, round {step[-1]}")
    axes[0].set_ylabel(r"expected reward $E[r]$")
    axes[1].set_ylabel("entropy (nats)")
    for ax in axes:
        ax.set_xlabel("round")
    axes[1].legend(loc="best")
    figures.panel_letters([*axes, *maps])
    figures.save(fig, out / "ferbach.png")


def _density_map(ax, coords: np.ndarray, p: np.ndarray, centre: np.ndarray, radius: float, title: str) -> None:
    """A model's distribution ``p`` ``(M,)`` on the 2-D grid ``coords`` ``(M, 2)`` as a density map,
    with the reward's ball (``centre`` ``(2,)``, ``radius``) outlined."""
    xs, ys = np.unique(coords[:, 0]), np.unique(coords[:, 1])
    image = np.zeros((len(ys), len(xs)))
    image[np.searchsorted(ys, coords[:, 1]), np.searchsorted(xs, coords[:, 0])] = p
    ax.pcolormesh(xs, ys, image, cmap="viridis", shading="nearest", rasterized=True)
    ax.add_patch(plt.Circle(tuple(centre), radius, fill=False, color="white", ls="--", lw=1))
    ax.set_aspect("equal")
    ax.grid(False)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


# --------------------------------------------------------------------------- collapse


def collapse_scenario(sample_size: int, replicates: int, seed: int) -> dict:
    """1-D Gaussians refit on their own samples: replace, accumulate, and 20% real data."""
    models, flows_ = {}, []
    for r in range(replicates):
        for kind in ("replace", "accumulate", "real_data"):
            name = f"{kind}{r}"
            models[name] = {"sample_size": sample_size,
                            "retention": "accumulate" if kind == "accumulate" else "replace"}
            if kind == "real_data":
                flows_ += [{"from": name, "to": name, "weight": 0.8}, {"from": "real", "to": name, "weight": 0.2}]
            else:
                flows_.append({"from": name, "to": name, "weight": 1.0})
    return {"name": "collapse", "mode": "sample", "seed": seed,
            "space": {"family": "gaussian", "dim": 1}, "sources": {"real": {"mean": [0.0], "var": 1.0}},
            "models": models, "flows": flows_}


def collapse(out: Path, quick: bool = False, seed: int = 0) -> dict:
    """Mean fitted variance over rounds against sigma0^2 ((M-1)/M)^n."""
    m, reps, steps = 10, (100 if quick else 400), (40 if quick else 200)
    model = parse(collapse_scenario(m, reps, seed)).build()
    var, quartiles = [], []
    for _ in range(steps + 1):
        per_replicate = model.family.mean_cov(model.state)[1][:, 0, 0].reshape(reps, 3)
        var.append(per_replicate.mean(axis=0))
        quartiles.append(np.quantile(per_replicate, [0.25, 0.75], axis=0))
        if len(var) <= steps:
            model.step()
    var, quartiles = np.array(var), np.array(quartiles)
    theory = ((m - 1) / m) ** np.arange(steps + 1)
    figures.save_data(out, {"labels": ("replace", "accumulate", "20% real data"), "variance": var,
                            "quartiles": quartiles, "theory": theory, "sample_size": m, "replicates": reps})
    return {"sample_size": m, "replicates": reps, "rounds": steps,
            "final_variance": dict(zip(("replace", "accumulate", "real_data"), var[-1].tolist(), strict=True)),
            "theory_replace": float(theory[-1])}


def _collapse_figure(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """The mean fitted variance ``(rounds + 1, 3)`` per retention with its quartiles over replicates
    ``(rounds + 1, 2, 3)``, against the theory ``(rounds + 1,)``, on a log scale."""
    var, quartiles = data["variance"], data["quartiles"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, name in enumerate(data["labels"]):
        ax.semilogy(var[:, k], color=figures.COLOURS[k], label=f"{name} (mean)")
        ax.fill_between(np.arange(len(var)), quartiles[:, 0, k], quartiles[:, 1, k], color=figures.COLOURS[k],
                        alpha=0.2, lw=0)
    ax.semilogy(data["theory"], "k--", label=r"$\sigma_0^2\,((M-1)/M)^n$")
    ax.fill_between([], [], [], color="0.6", alpha=0.3, label="quartiles over replicates")
    ax.set_xlabel("round $n$")
    ax.set_ylabel(f"fitted variance ($M = {data['sample_size']}$, {data['replicates']} replicates)")
    figures.legend_outside(ax)
    figures.save(fig, out / "collapse.png")


# --------------------------------------------------------------------------- web dynamics


def web_scenario(mode: str, n_models: int, curated: bool, seed: int) -> dict:
    """``n_models`` models starting apart on 41 points of [-2, 2]; each trains on 30% its own
    outputs and 70% a shared pool of everyone's outputs (curated by each model's users if asked)."""
    means = np.linspace(-1.2, 1.2, n_models)
    models = {f"m{k}": {"init": {"normal": {"mean": float(mu), "var": 0.1}}, "sample_size": 500}
              for k, mu in enumerate(means)}
    flows_, curators = [], {}
    for k in range(n_models):
        name = f"m{k}"
        flows_ += [{"from": name, "to": name, "weight": 0.3}, {"from": "web", "to": name, "weight": 0.7}]
        if curated:
            curators[f"users_{name}"] = {"curates": name, "K": 3, "reward": "centre"}
            flows_.append({"from": f"users_{name}", "to": "web", "weight": 1.0 / n_models})
        else:
            flows_.append({"from": name, "to": "web", "weight": 1.0 / n_models})
    return {"name": "web-dynamics", "mode": mode, "seed": seed,
            "space": {"grid": {"start": -2.0, "stop": 2.0, "num": 41}},
            "rewards": {"centre": {"kind": "quadratic", "eta": 1.0}},
            "models": models, "pools": {"web": {}}, "curators": curators, "flows": flows_}


def web_dynamics(out: Path, quick: bool = False, seed: int = 0) -> dict:
    """Mean pairwise divergence between models over rounds (homogenisation)."""
    steps = 20 if quick else 80
    summary, divergence = {}, []
    for mode in ("population", "sample"):
        for curated in (False, True):
            model = parse(web_scenario(mode, 6, curated, seed)).build()
            model.run(steps)
            eco = model.ecosystem_frame()
            tag = f"{mode}, {'curated' if curated else 'raw'} pool"
            divergence.append(eco["pairwise_divergence"])
            summary[tag] = {"initial": float(eco["pairwise_divergence"].iloc[0]),
                            "final": float(eco["pairwise_divergence"].iloc[-1])}
    figures.save_data(out, {"labels": list(summary), "step": eco["step"], "divergence": divergence})
    return summary


def _web_figure(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """Mean pairwise divergence ``(runs, rounds + 1)`` over ``step``, one line per run, on a log scale."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for tag, divergence in zip(data["labels"], data["divergence"], strict=True):
        ax.semilogy(data["step"], np.clip(divergence, 1e-16, None), label=tag)
    ax.set_xlabel("round")
    ax.set_ylabel(r"mean pairwise squared Hellinger distance $H^2$")
    figures.legend_outside(ax)
    figures.save(fig, out / "web_dynamics.png")


REPRODUCTIONS: dict[str, Callable[..., dict]] = {
    "gaussian-mechanism": gaussian_mechanism,
    "two-model-conflict": two_model_conflict,
    "ferbach": ferbach,
    "collapse": collapse,
    "web-dynamics": web_dynamics,
    "learned-conflict": partial(learned.learned_conflict, settings=SETTINGS, analogue=conflict_scenario),
    "conditional-llm": llm.conditional_llm,
}
"""Each reproduction ``(out, quick, seed) -> summary`` computes its numbers and saves its figure data
in ``out`` (:func:`ecosystem.formats.figures.save_data`)."""

FIGURES: dict[str, Callable[[Path, Mapping[str, np.ndarray]], None]] = {
    "gaussian-mechanism": _mechanism_figures,
    "two-model-conflict": _conflict_figure,
    "ferbach": _ferbach_figure,
    "collapse": _collapse_figure,
    "web-dynamics": _web_figure,
    "learned-conflict": learned.draw_figures,
    "conditional-llm": llm.draw_figures,
}
"""Each reproduction's figures ``(out, data)``: drawn into ``out`` from the arrays its run saved."""


def reproduce(name: str, out: Path, quick: bool = False, seed: int = 0) -> dict:
    """Run reproduction ``name``; write ``summary.json``, the figure data and the figures drawn
    from that data (read back from the file, as ``ecosystem plot`` reads it) into ``out``."""
    with staged(out) as stage:
        summary = {"reproduction": name, "quick": quick, "seed": seed} | REPRODUCTIONS[name](stage, quick, seed)
        FIGURES[name](stage, figures.load_data(stage))
        (stage / "summary.json").write_text(to_json(summary, indent=2, default=_json) + "\n")
    return summary


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")

