"""``conditional-llm``: the structure of the paper's language-model study, in miniature.

Two conditional models (THEORY.md sections 7 and 10), a *summariser* and a *paraphraser*.
An input is a prompt, described by its length (:data:`PROMPT_WORDS`, four bins, in words); a
response is described by its length and the fraction of it copied from the prompt
(:data:`RESPONSES`, four kinds). Each model has its own domain (prompt distribution): the
summariser mostly sees long documents, the paraphraser short sentences. The heuristic
rewards are tables over (prompt, response) pairs built from these features (in bits):

- ``summary``: length ratio near 1/4 (``-|log2(words / (prompt / 4))|``) plus keyword
  coverage (``min(1, copied words / keywords)``, a keyword being one prompt word in five);
- ``paraphrase``: length ratio near 1 (``-|log2(words / prompt)|``) plus novelty
  (``1 - copied fraction``);
- ``summary_length``, ``paraphrase_length``: the length terms alone (the proxy rewards).

Each model trains on real pairs of its domain (share 0.5), pairs of its own curated by best-of-4
(argmax) and cross-curated pairs whose inputs come from the other model's pool (edge ``inputs =
"producer"``); :data:`CROSS` is the other model's fraction of the curated share. Four
configurations (:data:`CONFIGURATIONS`): the cross pairs are judged by the producer's users
(the paper) or by the consumer's (a curator node with the consumer's reward on the producer's
answers), and the curators use the full heuristic or the length-only proxy while every model is
evaluated on the full heuristic (its ``eval_reward``). In each, the summariser's curated share
goes from 0.5 to 0.6 (real 0.4), and both models are evaluated after 13 rounds on their own
domain and on the other's (the domain-alignment table), exactly (population mode) and from
finite samples (several seeds, 95% intervals, base and raised share on common seeds). The
exact base configuration is also analysed (:func:`ecosystem.analysis.analyze`: stable point,
influence matrix, backfire report) and shipped as ``scenarios/conditional/two_tasks.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ecosystem import analysis
from ecosystem.analysis.intervals import t_half_width
from ecosystem.formats import figures
from ecosystem.formats.scenario import parse

plt = figures.plt

PROMPT_WORDS = (15, 40, 100, 250)
"""The input bins: prompt length in words (a sentence, a paragraph, a page, an article)."""
RESPONSES = ((12, 0.1), (12, 0.7), (60, 0.1), (60, 0.7))
"""The response kinds: (length in words, fraction copied from the prompt)."""
RESPONSE_NAMES = ("short, own words", "short, copied", "long, own words", "long, copied")
MODELS = ("summariser", "paraphraser")
TASK = {"summariser": "summary", "paraphraser": "paraphrase"}
"""Each model's full heuristic reward (its users' and its evaluation reward)."""
DOMAINS = {"summariser": (0.05, 0.15, 0.4, 0.4), "paraphraser": (0.4, 0.4, 0.15, 0.05)}
"""Each model's prompt distribution over :data:`PROMPT_WORDS`."""
CROSS = {"summariser": 0.7, "paraphraser": 0.3}
"""The fraction of each model's curated share that comes from the other model (the paper's A4)."""
K = 4
ROUNDS = 13
BASE_SHARE, MORE_SHARE = 0.5, 0.6
"""The summariser's curated share: base, and raised (real data absorbs the difference)."""
REAL_TEMPERATURE = 1 / 0.7
"""Real answers are each task's full reward softened at this temperature (``softmax(0.7 r)``)."""
CONFIGURATIONS = {
    "producer_users": ("producer", False),
    "consumer_users": ("consumer", False),
    "producer_users_proxy": ("producer", True),
    "consumer_users_proxy": ("consumer", True),
}
"""Configuration name: (whose users judge the cross pairs, curation by the length-only proxy)."""
DESCRIPTIONS = {
    "producer_users": "cross pairs judged by the producer's users (the paper); curation = evaluation reward",
    "consumer_users": "cross pairs judged by the consumer's users; curation = evaluation reward",
    "producer_users_proxy": "producer's users; curation by the length-only proxy, evaluation by the full heuristic",
    "consumer_users_proxy": "consumer's users; curation by the length-only proxy, evaluation by the full heuristic",
}


# --------------------------------------------------------------------------- rewards and data


def _features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prompt words ``(n_in, 1)``, response words ``(1, n_out)`` and copied fractions ``(1, n_out)``."""
    words, copied = (np.array(v, dtype=float)[None] for v in zip(*RESPONSES, strict=True))
    return np.array(PROMPT_WORDS, dtype=float)[:, None], words, copied


def reward_tables() -> dict[str, np.ndarray]:
    """The heuristic rewards ``(n_in, n_out)`` in bits, rounded to 2 decimals (as in the shipped file)."""
    prompt, words, copied = _features()
    summary_length = -np.abs(np.log2(words / (prompt / 4)))
    coverage = np.minimum(1.0, copied * words / (prompt / 5))
    paraphrase_length = -np.abs(np.log2(words / prompt))
    novelty = np.broadcast_to(1.0 - copied, paraphrase_length.shape)
    tables = {"summary": summary_length + coverage, "summary_length": summary_length,
              "paraphrase": paraphrase_length + novelty, "paraphrase_length": paraphrase_length}
    return {name: np.round(t, 2) + 0.0 for name, t in tables.items()}


def real_answers(reward: np.ndarray) -> np.ndarray:
    """Real responses per prompt ``(n_in, n_out)``: ``softmax(r / REAL_TEMPERATURE)``, rounded to 2 decimals."""
    e = np.exp(reward / REAL_TEMPERATURE)
    return np.round(e / e.sum(axis=1, keepdims=True), 2)


def other(model: str) -> str:
    """The other model of :data:`MODELS`."""
    return MODELS[1 - MODELS.index(model)]


def two_tasks_scenario(placement: str = "producer", proxy: bool = False, curated_summariser: float = BASE_SHARE,
                       mode: str = "population", sample_size: int = 1000, seed: int = 0) -> dict:
    """Scenario data of one configuration: ``placement`` ``"producer"`` (the cross pairs are judged
    by the producer's users) or ``"consumer"``; ``proxy``: curators use the length-only rewards;
    ``curated_summariser``: the summariser's curated share (the paraphraser's is 0.5);
    ``sample_size``: training pairs per model per round (sample mode)."""
    tables = reward_tables()
    curation = {m: TASK[m] + ("_length" if proxy else "") for m in MODELS}
    share = {"summariser": curated_summariser, "paraphraser": BASE_SHARE}
    curators = {f"{TASK[m]}_users": {"curates": m, "rule": "best_of_k", "K": K, "reward": curation[m]}
                for m in MODELS}
    flows_ = []
    for m in MODELS:
        o = other(m)
        judge = f"{TASK[o]}_users"
        if placement == "consumer":
            judge = f"{TASK[m]}_users_on_{o}"
            curators[judge] = {"curates": o, "rule": "best_of_k", "K": K, "reward": curation[m]}
        c, x = share[m], CROSS[m]
        flows_ += [{"from": f"real_{m}", "to": m, "weight": round(1.0 - c, 12)},
                   {"from": f"{TASK[m]}_users", "to": m, "weight": round(c * (1.0 - x), 12), "inputs": "producer"},
                   {"from": judge, "to": m, "weight": round(c * x, 12), "inputs": "producer"}]
    return {
        "name": "two_tasks", "mode": mode, "seed": seed, "steps": ROUNDS,
        "description": f"summariser vs paraphraser, {placement}'s users judge cross pairs"
                       + (", length-only curation" if proxy else ""),
        "space": {"family": "conditional", "inputs": [float(w) for w in PROMPT_WORDS],
                  "outputs": [[float(w), c] for w, c in RESPONSES]},
        "rewards": {name: {"kind": "tabular", "values": t.tolist()} for name, t in tables.items()},
        "sources": {f"real_{m}": {"domain": list(DOMAINS[m]), "responses": real_answers(tables[TASK[m]]).tolist()}
                    for m in MODELS},
        "models": {m: {"init": f"real_{m}", "eval_reward": TASK[m], "sample_size": sample_size} for m in MODELS},
        "curators": curators,
        "flows": flows_,
    }


def configuration(name: str, share: float = BASE_SHARE, mode: str = "population", sample_size: int = 1000,
                  seed: int = 0) -> dict:
    """Scenario data of configuration ``name`` (a key of :data:`CONFIGURATIONS`)."""
    placement, proxy = CONFIGURATIONS[name]
    return two_tasks_scenario(placement, proxy, share, mode, sample_size, seed)


# --------------------------------------------------------------------------- runs


def domain_trajectory(data: dict) -> np.ndarray:
    """Run scenario ``data`` for :data:`ROUNDS` rounds: each model's alignment on each model's
    domain per round, ``(ROUNDS + 1, 2, 2)`` (model, domain in :data:`MODELS` order; round 0 first)."""
    model = parse(data).build()
    model.run(ROUNDS)
    frame = model.domain_alignment_frame()
    table = frame.pivot_table(index="step", columns=["model", "domain"], values="alignment")
    return np.stack([[table[m, d].to_numpy() for d in MODELS] for m in MODELS]).transpose(2, 0, 1)


def sample_seeds(seed: int, n: int) -> list[int]:
    """``n`` scenario seeds derived from ``seed`` (the same list for the base and raised share)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n)]


def sampled_trajectories(name: str, share: float, sample_size: int, seeds: list[int]) -> np.ndarray:
    """Sample-mode trajectories of configuration ``name``, one per seed, ``(S, ROUNDS + 1, 2, 2)``."""
    return np.stack([domain_trajectory(configuration(name, share, "sample", sample_size, s)) for s in seeds])


def interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the first axis (the ``S`` seeds) and the half-width of its 95% interval
    (Student's t with ``S - 1`` degrees of freedom: ``t sd / sqrt(S)``)."""
    return values.mean(axis=0), t_half_width(values)


def _per_model(base: np.ndarray, more: np.ndarray, base_ci=None, more_ci=None, change_ci=None) -> dict:
    """Final-round values ``(2, 2)`` as ``{model: {own_domain | other_domain: {base, more, change, ...}}}``."""
    out = {}
    for i, m in enumerate(MODELS):
        out[m] = {}
        for key, j in (("own_domain", i), ("other_domain", 1 - i)):
            cell = {"base": base[i, j], "more": more[i, j], "change": more[i, j] - base[i, j]}
            if base_ci is not None:
                cell |= {"base_ci95": base_ci[i, j], "more_ci95": more_ci[i, j], "change_ci95": change_ci[i, j]}
            out[m][key] = {k: float(v) for k, v in cell.items()}
    return out


def analysed(name: str) -> dict:
    """The analysis of the exact base configuration ``name`` (what ``ecosystem analyze`` reports:
    stable point, spectral radius, influence matrix beside the raw effects, backfire list)."""
    return analysis.analyze(parse(configuration(name)).build()).to_dict()


def conditional_llm(out: Path, quick: bool = False, seed: int = 0) -> dict:
    """Both models' alignment on both domains, base and raised summariser curation, exact and
    sampled, in the four configurations; the analysis of each exact base configuration."""
    sample_size, n_seeds = (500, 4) if quick else (4000, 30)
    seeds = sample_seeds(seed, n_seeds)
    result, curves = {}, {}
    for name in CONFIGURATIONS:
        exact = {share: domain_trajectory(configuration(name, share)) for share in (BASE_SHARE, MORE_SHARE)}
        sampled = {share: sampled_trajectories(name, share, sample_size, seeds) for share in (BASE_SHARE, MORE_SHARE)}
        (b, b_ci), (m, m_ci) = (interval(sampled[s][:, -1]) for s in (BASE_SHARE, MORE_SHARE))
        change_ci = interval(sampled[MORE_SHARE][:, -1] - sampled[BASE_SHARE][:, -1])[1]
        population = _per_model(exact[BASE_SHARE][-1], exact[MORE_SHARE][-1])
        result[name] = {
            "description": DESCRIPTIONS[name],
            "population": population,
            "sample": _per_model(b, m, b_ci, m_ci, change_ci),
            # after ROUNDS rounds, exact: does more curation of the summariser lower its own
            # alignment, and the paraphraser's (each on its own domain)?
            "lowers_own_alignment": population["summariser"]["own_domain"]["change"] < 0,
            "lowers_other_model": population["paraphraser"]["own_domain"]["change"] < 0,
            "analysis": analysed(name),
        }
        curves[name] = (exact, sampled)
    _save_figure_data(out, curves, result)
    return {
        "configurations": result,
        "settings": {
            "prompt_words": list(PROMPT_WORDS), "responses": [list(r) for r in RESPONSES],
            "response_names": list(RESPONSE_NAMES), "domains": {m: list(d) for m, d in DOMAINS.items()},
            "cross_fraction": CROSS, "K": K, "rule": "best_of_k", "rounds": ROUNDS,
            "curated_share_summariser": {"base": BASE_SHARE, "more": MORE_SHARE},
            "sample_size": sample_size, "seeds": seeds,
        },
        "rewards": {k: v.tolist() for k, v in reward_tables().items()},
    }


# --------------------------------------------------------------------------- figures

PANELS = [(i, j) for i in range(2) for j in (i, 1 - i)]
"""(model, domain) of the columns of the rounds figure: each model on its own domain, then the other's."""


def _panel_title(i: int, j: int, sep: str = " ") -> str:
    where = "own" if i == j else f"{MODELS[j]}'s"
    return f"{MODELS[i]}{sep}on {where} domain"


def _save_figure_data(out: Path, curves: dict, result: dict) -> None:
    """The figures' data, per configuration ``(C,)``: the exact trajectories ``(C, shares, ROUNDS + 1,
    2, 2)`` and sampled ones ``(C, shares, S, ROUNDS + 1, 2, 2)`` (model, domain), and the final
    changes ``(C, panels)`` (:data:`PANELS` order) exact, sampled and the sampled 95% half-widths."""
    shares = (BASE_SHARE, MORE_SHARE)
    cells = [(MODELS[i], "own_domain" if i == j else "other_domain") for i, j in PANELS]
    figures.save_data(out, {
        "configurations": list(curves), "shares": shares,
        "exact": [[exact[s] for s in shares] for exact, _ in curves.values()],
        "sampled": [[sampled[s] for s in shares] for _, sampled in curves.values()],
        **{name: [[r[mode][m][key][cell] for m, key in cells] for r in result.values()]
           for name, mode, cell in (("change", "population", "change"), ("sampled_change", "sample", "change"),
                                    ("sampled_change_ci", "sample", "change_ci95"))},
    })


def draw_figures(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """``rounds`` and ``changes`` from :func:`_save_figure_data`'s arrays."""
    _rounds_figure(out, data)
    _changes_figure(out, data)


def _rounds_figure(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """Per round, each model's alignment on its own domain and on the other's (columns), per
    configuration (rows): exact at the base and raised share (lines), sample-mode means with
    95% intervals over the seeds (bands)."""
    names = data["configurations"]
    fig, axes = plt.subplots(len(names), 4, figsize=(13, 2.6 * len(names)), squeeze=False)
    for row, (name, exact, sampled) in enumerate(zip(names, data["exact"], data["sampled"], strict=True)):
        steps = np.arange(exact.shape[1])
        for col, (i, j) in enumerate(PANELS):
            ax = axes[row, col]
            for k, (share, style) in enumerate(zip(data["shares"], ("-", "--"), strict=True)):
                colour = figures.COLOURS[k]
                ax.plot(steps, exact[k][:, i, j], style, color=colour, label=f"exact, share {share:g}")
                mean, half = interval(sampled[k][:, :, i, j])
                ax.fill_between(steps, mean - half, mean + half, color=colour, alpha=0.2, lw=0,
                                label=f"sampled 95% interval, share {share:g}")
            if row == 0:
                ax.set_title(_panel_title(i, j, "\n"), fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{figures.readable(name)}\n$E[r]$ (bits)")
            if row == len(names) - 1:
                ax.set_xlabel("round")
    figures.legend_outside(axes[0, -1])
    figures.panel_letters(axes.ravel())
    figures.save(fig, out / "rounds.png")


def _changes_figure(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """The change of each alignment after :data:`ROUNDS` rounds when the summariser's curated
    share goes from 0.5 to 0.6: exact (bars) and sampled (means with 95% intervals)."""
    names = data["configurations"]
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(names))
    width = 0.2
    for k, (i, j) in enumerate(PANELS):
        pos = x + (k - 1.5) * width
        ax.bar(pos, data["change"][:, k], width, color=figures.COLOURS[k], label=_panel_title(i, j))
        ax.errorbar(pos, data["sampled_change"][:, k], yerr=data["sampled_change_ci"][:, k], fmt="o", color="black",
                    ms=3, capsize=2, label="sampled (95% interval)" if k == len(PANELS) - 1 else None)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, [figures.readable(n).replace(" proxy", "\nproxy") for n in names])
    ax.set_xlabel("configuration (whose users judge cross pairs; curation reward)")
    ax.set_ylabel(r"$\Delta E[r]$ (bits): share 0.6 minus 0.5")
    figures.legend_outside(ax)
    figures.save(fig, out / "changes.png")
