"""Reproductions of known results, each built as scenarios run through the engine.

``ecosystem reproduce NAME --out DIR`` writes figures and ``DIR/summary.json``:

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
from collections.abc import Callable
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.linalg import block_diag
from scipy.optimize import brentq, minimize_scalar

from ecosystem import analysis
from ecosystem.core.rounds import advance
from ecosystem.formats import figures
from ecosystem.formats.files import staged, to_json
from ecosystem.formats.scenario import parse
from ecosystem.studies.conditional_llm import conditional_llm
from ecosystem.studies.learned_conflict import learned_conflict

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


def _paper_j(model, rows: np.ndarray) -> np.ndarray:
    """The paper's alignment ``(N,)``: each model's reward at its mean, ``J(theta) = g.theta -
    eta/2 |theta|^2``, one row at a time (a batched product would change the last bits)."""
    mean = rows[:, :model.family.dim]
    return np.array([r(m[None])[0] for r, m in zip(model.eval_rewards, mean, strict=True)])


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


def _simulated_j(ref: dict, t: float, lam: float, n: int, replicates: int, rounds: int, burn: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Paper-J of (theta, phi) over rounds after ``burn``, sample mode: the mean over replicates
    ``(2,)`` and each replicate's own ``(replicates, 2)`` (for intervals).

    The replicates are stacked as nodes of one model, whose rounds are driven by
    :func:`~ecosystem.core.rounds.advance` alone: the same random stream as ``model.step()``,
    without its metrics and collection, and J is read only after the burn-in."""
    model = parse(mechanism_scenario(ref, t, lam, n, replicates, seed)).build()
    state, total, each = model.round_state, np.zeros(2), np.zeros((replicates, 2))
    for step in range(rounds):
        state = advance(model.kernel, state, mode=model.mode, order=model.order, rng=model.rng)
        if step >= burn:
            j = _paper_j(model, state.rows).reshape(replicates, 2)
            total += j.mean(axis=0)
            each += j
    return total / (rounds - burn), each / (rounds - burn)


def _sampled_derivative(ref: dict, t: float, lam: float, delta: float, n: int, replicates: int, rounds: int,
                        burn: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``dJ/dlambda`` ``(2,)`` at ``lam`` by a central difference of sample-mode runs, and the
    half-width ``(2,)`` of its 95% interval over the replicates (paired: both runs share the seed)."""
    (up, up_each), (down, down_each) = (_simulated_j(ref, t, lam + sign * delta, n, replicates, rounds, burn, seed)
                                        for sign in (1, -1))
    each = (up_each - down_each) / (2 * delta)
    return (up - down) / (2 * delta), 1.96 * each.std(axis=0, ddof=1) / np.sqrt(replicates)


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
    sampled = {n: np.array([_sampled_derivative(ref, t, lam0, delta, n, reps, rounds, burn, seed)
                            for t in t_sampled]).transpose(1, 0, 2) for n in sizes}   # (value | ci, t, 2)

    dq = lambda t: _theorem(ref, t, lam0)[0][1]  # noqa: E731
    flips = np.flatnonzero(np.sign(theorem[:-1, 1]) != np.sign(theorem[1:, 1]))
    sign_change = float(brentq(dq, ts[flips[0]], ts[flips[0] + 1], xtol=1e-10)) if flips.size else None

    lams = np.linspace(0.0, 0.8, 17 if quick else 41)
    curves, at09 = {}, {}
    for t in (0.2, 0.9):
        exact = np.array([_paper_j(*_model_rows(ref, t, lam)) for lam in lams])
        lam_s = lams[:: 4 if quick else 5]
        sim = {n: np.array([_simulated_j(ref, t, lam, n, reps, rounds, burn, seed)[0] for lam in lam_s])
               for n in (4, 32)}
        curves[t] = (exact, lam_s, sim)
    j_of = lambda lam, k: _paper_j(*_model_rows(ref, 0.9, lam))[k]  # noqa: E731
    for k, key in ((0, "argmax_lambda_Jp"), (1, "argmax_lambda_Jq")):
        at09[key] = float(minimize_scalar(lambda lam, k=k: -j_of(lam, k), bounds=(0, 0.8), method="bounded",
                                          options={"xatol": 1e-10}).x)
    lo = max(at09["argmax_lambda_Jq"], 1e-6)
    at09["zero_lambda_Jq"] = (float(brentq(lambda lam: j_of(lam, 1), lo, 0.8, xtol=1e-12))
                              if j_of(lo, 1) * j_of(0.8, 1) < 0 else None)

    _mechanism_figures(out, ts, theorem, explicit, fd, raw, t_sampled, sampled, lams, curves)
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


def _mechanism_figures(out, ts, theorem, explicit, fd, raw, t_sampled, sampled, lams, curves) -> None:
    names = ("J_p", "J_q")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.plot(ts, theorem[:, k], "k-", lw=2, label="theorem (implicit function)")
        ax.plot(ts, explicit[:, k], ls="--", color=figures.COLOURS[4], lw=1.5, label="explicit derivative")
        ax.plot(ts, fd[:, k], ".", color=figures.COLOURS[1], ms=6, label="finite difference")
        for j, (n, (v, ci)) in enumerate(sampled.items()):
            ax.errorbar(t_sampled, v[:, k], yerr=ci[:, k], fmt="os^"[j % 3], color=figures.COLOURS[(j + 2) % 7],
                        ms=4, alpha=0.8, capsize=2, label=f"finite sample, $n = {n}$ (95% interval)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("coupling $t$")
        ax.set_ylabel(rf"$\partial {name}^*/\partial\lambda$ at $\lambda_0$")
    axes[0].legend(loc="best")
    figures.panel_letters(axes)
    figures.save(fig, out / "derivatives.png")

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for row, t in enumerate((0.2, 0.9)):
        exact, lam_s, sim = curves[t]
        for k, name in enumerate(names):
            ax = axes[row, k]
            ax.plot(lams, exact[:, k], "k-", lw=2, label="exact")
            for j, (n, v) in enumerate(sim.items()):
                ax.plot(lam_s, v[:, k], "os"[j % 2], color=figures.COLOURS[(j + 2) % 7], ms=4,
                        label=f"finite sample, $n = {n}$")
            ax.set_title(rf"${name}^*(\lambda)$ at $t = {t}$")
            ax.set_xlabel(r"curation ratio $\lambda$")
            ax.set_ylabel(rf"${name}^*$")
    axes[0, 0].legend(loc="best")
    figures.panel_letters(axes.ravel())
    figures.save(fig, out / "alignment_vs_lambda.png")

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
        for tag, share in (("base", 0.5), ("more_curation", 0.6)):
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
    _conflict_figure(out, np.array(deltas), trajectories)
    return result


def _conflict_figure(out: Path, deltas: np.ndarray, trajectories: dict) -> None:
    """(a) the change of each stable alignment when theta's curated share goes from 0.5 to 0.6, per
    setting; (b)-(g) per setting, both models' alignment over rounds at the base and the raised share."""
    fig = plt.figure(figsize=(13, 5))
    grid = fig.add_gridspec(2, 4, width_ratios=[1.6, 1, 1, 1])
    bars = fig.add_subplot(grid[:, 0])
    x = np.arange(len(SETTINGS))
    bars.bar(x - 0.2, deltas[:, 0], 0.4, color=figures.COLOURS[0], label=r"$\Delta J_p$ ($\theta$ curated more)")
    bars.bar(x + 0.2, deltas[:, 1], 0.4, color=figures.COLOURS[1], label=r"$\Delta J_q$ ($\phi$)")
    bars.set_xticks(x, [f"{k}\n{v[0]:g}, {v[1]:g}" for k, v in SETTINGS.items()])
    bars.set_xlabel(r"setting (cross fractions $\theta$, $\phi$)")
    bars.axhline(0, color="grey", lw=0.8)
    bars.set_ylabel(r"stable alignment: curated share 0.6 minus 0.5")
    bars.legend(loc="best")
    panels = [bars]
    for k, setting in enumerate(SETTINGS):
        ax = fig.add_subplot(grid[k // 3, 1 + k % 3])
        for tag, style in (("base", "-"), ("more_curation", "--")):
            frame = trajectories[setting, tag]
            for j, (model, symbol) in enumerate((("theta", r"$J_p$"), ("phi", r"$J_q$"))):
                rows = frame[frame["model"] == model]
                ax.plot(rows["step"], rows["alignment"], ls=style, color=figures.COLOURS[j],
                        label=f"{symbol}, share {0.5 if tag == 'base' else 0.6}")
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
    fig = plt.figure(figsize=(12, 6.5))
    grid = fig.add_gridspec(2, 3, width_ratios=[1.3, 1, 1])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])]
    maps = [fig.add_subplot(grid[r, c]) for r in (0, 1) for c in (1, 2)]
    summary = {}
    for row, (mode, style) in enumerate((("population", "-"), ("sample", "--"))):
        model = parse(ferbach_scenario(mode, steps, seed)).build()
        model.run(steps)
        agents = model.agents_frame()
        ball = model.rewards["ball"]
        top = model.family.reward_table(ball) >= -1e-12
        for k, (name, df) in enumerate(agents.groupby("model")):
            label = f"{figures.readable(name)} ({mode})"
            axes[0].plot(df["step"], df["alignment"], style, color=figures.COLOURS[k], label=label)
            axes[1].plot(df["step"], df["diversity"], style, color=figures.COLOURS[k], label=label)
        final = model.state
        for k, agent in enumerate(model.model_agents):
            _density_map(maps[2 * row + k], model.family.coords, final[agent.index],
                         f"{figures.readable(agent.name)}, {mode}, round {steps}")
        summary[mode] = {
            str(a.name): {"reward": a.alignment, "entropy": a.diversity,
                          "mass_on_ball": float(final[a.index][top].sum())}
            for a in model.model_agents
        }
    axes[0].set_ylabel(r"expected reward $E[r]$")
    axes[1].set_ylabel("entropy (nats)")
    for ax in axes:
        ax.set_xlabel("round")
    axes[1].legend(loc="best")
    figures.panel_letters([*axes, *maps])
    figures.save(fig, out / "ferbach.png")
    return summary


def _density_map(ax, coords: np.ndarray, p: np.ndarray, title: str) -> None:
    """A model's distribution on the 2-D grid ``coords`` ``(M, 2)`` as a density map, with the
    reward's ball outlined."""
    xs, ys = np.unique(coords[:, 0]), np.unique(coords[:, 1])
    image = np.zeros((len(ys), len(xs)))
    image[np.searchsorted(ys, coords[:, 1]), np.searchsorted(xs, coords[:, 0])] = p
    ax.pcolormesh(xs, ys, image, cmap="viridis", shading="nearest", rasterized=True)
    centre = (1.5 * np.cos(np.pi / 4), 1.5 * np.sin(np.pi / 4))
    ax.add_patch(plt.Circle(centre, 0.5, fill=False, color="white", ls="--", lw=1))
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
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, name in enumerate(("replace", "accumulate", "20% real data")):
        ax.semilogy(var[:, k], color=figures.COLOURS[k], label=f"{name} (mean)")
        ax.fill_between(np.arange(steps + 1), quartiles[:, 0, k], quartiles[:, 1, k], color=figures.COLOURS[k],
                        alpha=0.2, lw=0)
    ax.semilogy(theory, "k--", label=r"$\sigma_0^2\,((M-1)/M)^n$")
    ax.fill_between([], [], [], color="0.6", alpha=0.3, label="quartiles over replicates")
    ax.set_xlabel("round $n$")
    ax.set_ylabel(f"fitted variance ($M = {m}$, {reps} replicates)")
    figures.legend_outside(ax)
    figures.save(fig, out / "collapse.png")
    return {"sample_size": m, "replicates": reps, "rounds": steps,
            "final_variance": dict(zip(("replace", "accumulate", "real_data"), var[-1].tolist(), strict=True)),
            "theory_replace": float(theory[-1])}


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
    fig, ax = plt.subplots(figsize=(6, 4))
    summary = {}
    for mode in ("population", "sample"):
        for curated in (False, True):
            model = parse(web_scenario(mode, 6, curated, seed)).build()
            model.run(steps)
            eco = model.ecosystem_frame()
            tag = f"{mode}, {'curated' if curated else 'raw'} pool"
            ax.semilogy(eco["step"], eco["pairwise_divergence"].clip(lower=1e-16), label=tag)
            summary[tag] = {"initial": float(eco["pairwise_divergence"].iloc[0]),
                            "final": float(eco["pairwise_divergence"].iloc[-1])}
    ax.set_xlabel("round")
    ax.set_ylabel(r"mean pairwise squared Hellinger distance $H^2$")
    figures.legend_outside(ax)
    figures.save(fig, out / "web_dynamics.png")
    return summary


REPRODUCTIONS: dict[str, Callable[..., dict]] = {
    "gaussian-mechanism": gaussian_mechanism,
    "two-model-conflict": two_model_conflict,
    "ferbach": ferbach,
    "collapse": collapse,
    "web-dynamics": web_dynamics,
    "learned-conflict": partial(learned_conflict, settings=SETTINGS, analogue=conflict_scenario),
    "conditional-llm": conditional_llm,
}


def reproduce(name: str, out: Path, quick: bool = False, seed: int = 0) -> dict:
    """Run reproduction ``name``; write its figures and ``summary.json`` into ``out``."""
    with staged(out) as stage:
        summary = {"reproduction": name, "quick": quick, "seed": seed} | REPRODUCTIONS[name](stage, quick, seed)
        (stage / "summary.json").write_text(to_json(summary, indent=2, default=_json) + "\n")
    return summary


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")

