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
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.linalg import block_diag
from scipy.optimize import brentq, minimize_scalar

from ecosystem import analysis
from ecosystem.formats import figures
from ecosystem.formats.files import staged, to_json
from ecosystem.formats.scenario import parse

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
    """The paper's alignment: each model's reward at its mean, ``J(theta) = g.theta - eta/2 |theta|^2``."""
    mean, _ = model.family.mean_cov(rows)
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
                 seed: int) -> np.ndarray:
    """Mean paper-J of (theta, phi) over rounds after ``burn`` and over replicates, sample mode."""
    model = parse(mechanism_scenario(ref, t, lam, n, replicates, seed)).build()
    total = np.zeros(2)
    for step in range(rounds):
        model.step()
        if step >= burn:
            total += _paper_j(model, model.state).reshape(replicates, 2).mean(axis=0)
    return total / (rounds - burn)


def gaussian_mechanism(out: Path, quick: bool = False, seed: int = 0) -> dict:
    """The paper's Fig. 3: influence of theta's curation ratio against the coupling t."""
    ref = mechanism_data()
    lam0 = ref["lambda0"]
    ts = np.linspace(0.05, 1.0, 8 if quick else 39)
    reps, rounds, burn = (8, 40, 30) if quick else (40, 100, 80)
    sizes = (4, 64) if quick else (4, 12, 64)
    theorem = np.array([_theorem(ref, t, lam0)[0] for t in ts])
    raw = np.array([_theorem(ref, t, lam0)[1] for t in ts])
    explicit = np.array([_explicit(ref, t, lam0) for t in ts])
    fd = np.array([_finite_difference(ref, t, lam0) for t in ts])
    delta, t_sampled = 0.1, ts[:: 2 if quick else 4]
    sampled = {n: np.array([
        (_simulated_j(ref, t, lam0 + delta, n, reps, rounds, burn, seed)
         - _simulated_j(ref, t, lam0 - delta, n, reps, rounds, burn, seed)) / (2 * delta)
        for t in t_sampled]) for n in sizes}

    dq = lambda t: _theorem(ref, t, lam0)[0][1]  # noqa: E731
    flips = np.flatnonzero(np.sign(theorem[:-1, 1]) != np.sign(theorem[1:, 1]))
    sign_change = float(brentq(dq, ts[flips[0]], ts[flips[0] + 1], xtol=1e-10)) if flips.size else None

    lams = np.linspace(0.0, 0.8, 17 if quick else 41)
    curves, at09 = {}, {}
    for t in (0.2, 0.9):
        exact = np.array([_paper_j(*_model_rows(ref, t, lam)) for lam in lams])
        lam_s = lams[:: 4 if quick else 5]
        sim = {n: np.array([_simulated_j(ref, t, lam, n, reps, rounds, burn, seed) for lam in lam_s])
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
                                   "dJq_dlambda": v[:, 1].tolist()} for n, v in sampled.items()},
        "raw_effect_positive_everywhere": bool(np.all(raw[:, 0] > 0)),
        "settings": {"replicates": reps, "rounds": rounds, "burn_in": burn, "delta_lambda": delta},
    }


def _model_rows(ref: dict, t: float, lam: float) -> tuple:
    model, point = _exact(ref, t, lam)
    return model, point.rows


def _mechanism_figures(out, ts, theorem, explicit, fd, raw, t_sampled, sampled, lams, curves) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, (ax, name) in enumerate(zip(axes, ("J_p", "J_q"), strict=True)):
        ax.plot(ts, theorem[:, k], "k-", lw=2, label="theorem (IFT)")
        ax.plot(ts, explicit[:, k], "c--", lw=1.5, label="explicit derivative")
        ax.plot(ts, fd[:, k], "r.", ms=6, label="finite difference")
        for n, v in sampled.items():
            ax.plot(t_sampled, v[:, k], "o", ms=4, alpha=0.7, label=f"finite sample n={n}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("coupling t")
        ax.set_ylabel(f"d{name}*/dlambda at lambda0")
        ax.legend(fontsize=7)
    figures.save(fig, out / "derivatives.png")

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for row, t in enumerate((0.2, 0.9)):
        exact, lam_s, sim = curves[t]
        for k, name in enumerate(("J_p", "J_q")):
            ax = axes[row, k]
            ax.plot(lams, exact[:, k], "k-", lw=2, label="exact")
            for n, v in sim.items():
                ax.plot(lam_s, v[:, k], "o", ms=4, label=f"finite sample n={n}")
            ax.set_title(f"{name}*(lambda) at t = {t}", fontsize=9)
            ax.set_xlabel("lambda")
            ax.legend(fontsize=7)
    figures.save(fig, out / "alignment_vs_lambda.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ts, raw[:, 0], label="raw effect on J_p (one round)")
    ax.plot(ts, raw[:, 1], label="raw effect on J_q (first arrival)")
    ax.plot(ts, theorem[:, 1], "k--", label="long-run dJ_q*/dlambda")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("coupling t")
    ax.set_ylabel("effect of curation")
    ax.legend(fontsize=7)
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
    result, deltas = {}, []
    for name, (xt, xp) in SETTINGS.items():
        row = {}
        for tag, share in (("base", 0.5), ("more_curation", 0.6)):
            model = parse(conflict_scenario(xt, xp, share)).build()
            model.run(rounds)
            row[f"Jp_{tag}"], row[f"Jq_{tag}"] = (float(v) for v in model.measures["alignment"])
            if tag == "base":
                ana = analysis.analyze(model)
                row["stable_point_Jp"], row["stable_point_Jq"] = (float(v) for v in ana.alignment)
                row["influence"] = ana.to_dict()["influence"]
                row["parameters"] = ana.to_dict()["parameters"]
                row["spectral_radius"] = ana.spectral_radius
        row["self_backfire"] = row["Jp_more_curation"] < row["Jp_base"]
        row["cross_backfire"] = row["Jq_more_curation"] < row["Jq_base"]
        result[name] = row
        deltas.append((row["Jp_more_curation"] - row["Jp_base"], row["Jq_more_curation"] - row["Jq_base"]))
    deltas = np.array(deltas)
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(SETTINGS))
    ax.bar(x - 0.2, deltas[:, 0], 0.4, label="change in J_p (theta, curated more)")
    ax.bar(x + 0.2, deltas[:, 1], 0.4, label="change in J_q (phi)")
    ax.set_xticks(x, [f"{k}\n{v}" for k, v in SETTINGS.items()], fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("stable alignment: curated share 0.6 minus 0.5")
    ax.legend(fontsize=8)
    figures.save(fig, out / "conflict.png")
    return result


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
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    summary = {}
    for mode, style in (("population", "-"), ("sample", "--")):
        model = parse(ferbach_scenario(mode, steps, seed)).build()
        model.run(steps)
        agents = model.agents_frame()
        ball = model.rewards["ball"]
        top = model.family.reward_table(ball) >= -1e-12
        for name, df in agents.groupby("model"):
            axes[0].plot(df["step"], df["alignment"], style, label=f"{name} ({mode})")
            axes[1].plot(df["step"], df["diversity"], style, label=f"{name} ({mode})")
        final = model.state
        summary[mode] = {
            str(a.name): {"reward": a.alignment, "entropy": a.diversity,
                          "mass_on_ball": float(final[a.index][top].sum())}
            for a in model.model_agents
        }
    axes[0].set_ylabel("expected reward E[r]")
    axes[1].set_ylabel("entropy (nats)")
    for ax in axes:
        ax.set_xlabel("round")
        ax.legend(fontsize=7)
    figures.save(fig, out / "ferbach.png")
    return summary


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
    var = []
    for _ in range(steps + 1):
        var.append(model.family.mean_cov(model.state)[1][:, 0, 0].reshape(reps, 3).mean(axis=0))
        if len(var) <= steps:
            model.step()
    var = np.array(var)
    theory = ((m - 1) / m) ** np.arange(steps + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, name in enumerate(("replace", "accumulate", "20% real data")):
        ax.semilogy(var[:, k], label=name)
    ax.semilogy(theory, "k--", label="((M-1)/M)^n")
    ax.set_xlabel("round n")
    ax.set_ylabel(f"mean fitted variance (M = {m}, {reps} replicates)")
    ax.legend(fontsize=8)
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
    ax.set_ylabel("mean pairwise squared Hellinger distance")
    ax.legend(fontsize=8)
    figures.save(fig, out / "web_dynamics.png")
    return summary


REPRODUCTIONS: dict[str, Callable[..., dict]] = {
    "gaussian-mechanism": gaussian_mechanism,
    "two-model-conflict": two_model_conflict,
    "ferbach": ferbach,
    "collapse": collapse,
    "web-dynamics": web_dynamics,
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

