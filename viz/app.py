"""The browser page: an ecosystem live, laid out as a Mesa ``SolaraViz`` app (matplotlib drawings).

Run it with ``ecosystem viz [SCENARIO]`` (or ``solara run viz/app.py``). Every browser session
(tab, reload) builds its own model (:func:`Page`), so visitors never step each other's
ecosystem. The sidebar holds Mesa's Reset / Play / Step controls (``ModelController``) and the
knobs (scenario or scripted story, topology and size, curation ratio and what absorbs its change,
K, tau, real-data share, mode, seed), each labelled with the built ecosystem's value; a combination that cannot be built
is explained under the knobs before Reset. The "Ecosystem" tab shows the data-flow graph
coloured by alignment, a status line, and time series of alignment, diversity and
homogenisation; the "Long-run analysis" tab the influence matrix, the negative-influence and
backfire lists of :func:`ecosystem.analysis.analyze`, and on request the optimal vs siloed curation policy
(:mod:`ecosystem.analysis.policy`). Pictures scale with the window.

The scenario shown first is ``$ECOSYSTEM_VIZ_SCENARIO`` (a name in ``scenarios/`` or a path),
else ``default``.
"""

from __future__ import annotations

import os
from base64 import b64encode
from html import escape

import matplotlib

matplotlib.use("Agg")
import solara
from matplotlib.figure import Figure
from mesa.visualization.solara_viz import ModelController, UserInputs
from mesa.visualization.utils import update_counter

from ecosystem import analysis
from ecosystem.analysis import policy
from ecosystem.core.conditional import ConditionalCategorical
from ecosystem.core.learned import Learned
from ecosystem.formats import figures, response_tables, sample_grid
from ecosystem.formats.files import fixed4
from ecosystem.formats.names import name_of, shipped
from viz.model import ABSORBS, FILE, KS, MODES, SHARES, SIZES, TAUS, TOPOLOGIES, VizModel, knob_problem, relayout
from viz.pictures import DPI, NetworkPicture, SeriesPicture, png_of

MAX_ANALYSIS_PARAMETERS = 400
"""Analysis (a Jacobian by finite differences) is offered up to this many free parameters."""
HINT = "Change knobs, then press <b>Reset</b> to rebuild the ecosystem; <b>Step</b> or <b>▶</b> to run rounds."
PLAY_INTERVAL_MS = 50
WIDE = "width: 100%; height: auto"
"""Style of the pictures: as wide as their column, so they scale with the window."""
TABLE_CSS = (".backfire th, .backfire td { padding: 2px 5px; }"
             " .backfire th + th, .backfire td + td { text-align: right; font-variant-numeric: tabular-nums; }")
"""The page's tables (analysis lists, policies): spaced columns, numbers right-aligned."""
STATIC_DPI = 2 * DPI
"""Resolution of the analysis heatmap: drawn once and shown as wide as its column, so sharper than
the animated pictures (at :data:`~viz.pictures.DPI` a small matrix would be blown up and blurred)."""
EFFECT_LISTS = (
    ("negative_influence", "Negative influence", "the long-run effect dJ_i*/dλ_j is below 0"),
    ("backfire", "Backfire", "the first-arrival effect is positive (aligned with the reward) yet the long-run "
                             "effect is negative"),
)
"""The analysis tab's two lists, in the words of docs/THEORY.md (section 4, "Words")."""


def initial_scenario() -> str:
    """The scenario shown first: ``$ECOSYSTEM_VIZ_SCENARIO`` or ``default``."""
    return os.environ.get("ECOSYSTEM_VIZ_SCENARIO", "default")


def _choices(values) -> list[str]:
    return [FILE, *(str(v) for v in values)]


def model_params(scenario: str, values: dict | None = None, effective: dict | None = None) -> dict:
    """The knobs of the page (Mesa user parameters); ``file`` keeps the file's value.

    ``values``: the knobs' current values (default: the scenario's, ``file`` elsewhere);
    ``effective``: the built ecosystem's values (:meth:`VizModel.effective`), shown in the labels.
    """
    names = shipped()
    if scenario not in names:
        names.append(scenario)
    values, effective = values or {}, effective or {}

    def label(key: str, text: str) -> str:
        return f"{text} · now {effective[key]}" if key in effective else text

    def select(key: str, text: str, choices: list[str]) -> dict:
        return {"type": "Select", "value": values.get(key, FILE), "values": choices, "label": label(key, text)}

    return {
        "scenario_name": {"type": "Select", "value": values.get("scenario_name", scenario), "values": names,
                          "label": "Scenario or story"},
        "topology": select("topology", "Topology", _choices(TOPOLOGIES)),
        "n": select("n", "Size n (models)", _choices(SIZES)),
        "curation_ratio": select("curation_ratio", "Curation ratio λ", _choices(SHARES)),
        "absorb": select("absorb", "λ change absorbed by", _choices(ABSORBS)),
        "real_share": select("real_share", "Real-data share", _choices(SHARES)),
        "K": select("K", "K (candidates per choice)", _choices(KS)),
        "tau": select("tau", "τ (temperature)", _choices(TAUS)),
        "mode": select("mode", "Mode", _choices(MODES)),
        "seed": {"type": "InputText", "value": values.get("seed", ""),
                 "label": label("seed", "Seed (blank: the file's)")},
    }


# --------------------------------------------------------------------------- analysis


def _cached(model: VizModel, key: str, what: str, command: str, compute, failure: str) -> dict:
    """``compute(model)`` once per model (kept as ``model.<key>``), or ``{"message": ...}`` when the
    ecosystem has too many free parameters for the page (``ecosystem <command>`` instead) or the
    computation fails (``failure``: the message's start)."""
    cached = getattr(model, key, None)
    if cached is not None:
        return cached
    size = len(model.model_agents) * model.state.shape[1]
    if size > MAX_ANALYSIS_PARAMETERS:
        out = {"message": f"{what} offered here up to {MAX_ANALYSIS_PARAMETERS} free parameters "
                          f"(this ecosystem has {size}); run `ecosystem {command}` instead."}
    else:
        try:
            out = compute(model)
        except Exception as err:
            out = {"message": f"{failure}: {type(err).__name__}: {err}"}
    setattr(model, key, out)
    return out


def analysis_result(model: VizModel) -> dict:
    """``analyze(model)`` as a dict (with the heatmap figure), or ``{"message": ...}``; cached per model."""
    return _cached(model, "_analysis", "The influence analysis is", "analyze", _analysis, "The analysis failed")


def _analysis(model: VizModel) -> dict:
    result = analysis.analyze(model, analysis.curation_parameters(model, model.absorb))
    out = result.to_dict()
    if out["parameters"]:
        fig = Figure(figsize=figures.influence_size(len(out["models"]), len(out["parameters"])), dpi=STATIC_DPI)
        figures.draw_influence(fig.add_subplot(), result.influence.influence, out["models"], out["parameters"])
        out["figure"] = png_of(fig)
    return out


def policy_result(model: VizModel) -> dict:
    """Optimal vs siloed curation (:mod:`ecosystem.analysis.policy`, mean alignment) with the
    ecosystem's current total curation as the budget: ``PolicyReport.to_dict()`` (predicted at the
    stable point, not simulated) plus ``rows`` ``(lever, now, optimal, siloed)``, or ``{"message": ...}``;
    cached per model."""
    return _cached(model, "_policy", "Policies are", "optimize", _policy, "No policy comparison")


def _policy(model: VizModel) -> dict:
    levers = policy.curation_levers(model, absorb=model.absorb)
    budget = float(sum(lv.parameter.get(model.graph) for lv in levers))
    report = policy.optimize(policy.Problem(model, levers, budget, "mean"), simulate_policies=False, n_random=0)
    out = report.to_dict()
    out["rows"] = [(lv.parameter.label(), lv.parameter.get(model.graph), float(o), float(q)) for lv, o, q
                   in zip(levers, report.policies["optimal"].levers, report.policies["siloed"].levers, strict=True)]
    return out


# --------------------------------------------------------------------------- components


def _picture(model: VizModel, kind: type) -> NetworkPicture | SeriesPicture:
    """The model's picture of class ``kind``, built on first use (one per model and kind)."""
    pictures_ = model.__dict__.setdefault("_pictures", {})
    if kind not in pictures_ or _stale(pictures_[kind], model):
        if kind is NetworkPicture and kind in pictures_:     # keep placed nodes where they were
            model.layout = relayout(model.graph, model.layout)
        pictures_[kind] = kind(model)
    return pictures_[kind]


def _stale(picture: NetworkPicture | SeriesPicture, model: VizModel) -> bool:
    """Whether models or nodes appeared or left since ``picture`` was drawn (scripted events)."""
    if isinstance(picture, NetworkPicture):
        return picture.nodes_drawn != tuple(model.graph.nodes)
    return picture.names != model.per_model("alignment", len(model.history["pairwise_divergence"]))[0]


def _picture_view(model: VizModel, kind: type, alt: str, on_error: solara.Element) -> solara.Element:
    """The model's picture of class ``kind`` at the current round (described by ``alt``), or ``on_error``."""
    update_counter.get()
    png = solara.use_memo(lambda: None if model.error else _picture(model, kind).png(model),
                          [id(model), model.steps])
    return on_error if model.error else _image(png, alt)


def _image(png: bytes, alt: str) -> solara.Element:
    """A PNG as wide as its column; ``alt`` says what it shows (its accessible name)."""
    return solara.v.Img(src=f"data:image/png;base64,{b64encode(png).decode()}", contain=True, style_=WIDE,
                        class_="ecosystem-picture", alt=alt)


@solara.component
def NetworkView(model: VizModel) -> solara.Element:
    """The data-flow graph, models coloured by their current alignment (nothing when not built:
    :func:`StatusView` says why)."""
    return _picture_view(model, NetworkPicture, "data-flow graph, models coloured by alignment", solara.Text(""))


@solara.component
def SeriesView(model: VizModel) -> solara.Element:
    """Alignment per model with the ecosystem mean and minimum; diversity; homogenisation."""
    return _picture_view(model, SeriesPicture, "alignment, diversity and homogenisation over rounds",
                         solara.Text(""))


@solara.component
def StatusView(model: VizModel) -> solara.Element:
    """The round counter, what was built, and the ecosystem metrics now (or the build error)."""
    update_counter.get()
    with solara.Column() as main:
        if model.error:
            solara.Error(f"Cannot build this ecosystem: {model.error}")
            solara.Text("Pick other knobs and press Reset.")
        else:
            eco = model.ecosystem
            _html(f"<h3 class='ecosystem-round'>Round {model.steps}</h3><p>{escape(model.describe())}</p>"
                  f"<p>mean alignment {fixed4(eco['mean_alignment'])} · min alignment "
                  f"{fixed4(eco['min_alignment'])}<br>mean diversity {fixed4(eco['mean_diversity'])} · "
                  f"pairwise divergence {eco['pairwise_divergence']:.4g}</p><p>{HINT}</p>")
    return main


@solara.component
def SamplesView(model: VizModel) -> solara.Element:
    """The models themselves: learned models of pictures show their samples at the start and now,
    drawn with the same random numbers (:mod:`ecosystem.formats.sample_grid`); conditional models
    their answer tables (:mod:`ecosystem.formats.response_tables`); nothing for other families."""
    update_counter.get()
    family = None if model.error else model.family
    if isinstance(family, ConditionalCategorical):
        return _image(png_of(response_tables.figure(family, model.initial, model.state, list(model.kernel.models),
                                                    now=f"round {model.steps}")),
                      f"answer tables of the conditional models, start and round {model.steps}")
    if not isinstance(family, Learned) or not family.shape:
        return solara.Text("")
    start, now = sample_grid.draws(family, model.state)
    names = list(model.kernel.models)
    return _image(png_of(sample_grid.figure(family, start, now, names, now=f"round {model.steps}")),
                  f"samples of the learned models, start and round {model.steps}")


def _html(html: str) -> solara.Element:
    return solara.HTML(tag="div", unsafe_innerHTML=html)


@solara.component
def AnalysisView(model: VizModel) -> solara.Element:
    """Stable point, influence matrix heatmap and backfire list (population mode)."""
    if model.error:
        return solara.Markdown("")
    r = analysis_result(model)
    with solara.Column() as main:
        if "message" in r:
            solara.Warning(r["message"])
            return main
        status = "converged" if r["converged"] else "did not converge"
        stable = "a contraction (locally stable)" if r["stable"] else "NOT a contraction"
        _html(f"<h3>Long-run analysis (population mode)</h3><p>Stable point {status} in {r['iterations']} "
              f"iterations; spectral radius {r['spectral_radius']:.4f}: {stable}.</p>")
        if "figure" in r:
            _image(r["figure"], "influence matrix heatmap")
        for key, title, words in EFFECT_LISTS:
            if r[key]:
                rows = "".join(f"<tr><td>{escape(b['parameter'])}</td><td>{escape(b['affected'])}</td>"
                               f"<td>{b['scope']}</td><td>{b['raw']:+.4g}</td><td>{b['influence']:+.4g}</td></tr>"
                               for b in r[key])
                _html(f"<p><b>{title}</b>: {words}</p><table class='backfire'><tr><th>parameter</th>"
                      "<th>affected model</th><th>self/cross</th><th>first-arrival</th><th>long-run</th></tr>"
                      f"{rows}</table>")
            else:
                _html(f"<p><b>{title}</b>: none ({words}).</p>")
    return main


@solara.component
def PolicyView(model: VizModel) -> solara.Element:
    """On request: where to spend the current curation (optimal vs siloed, price of siloing)."""
    shown, show = solara.use_state(False)
    if model.error:
        return solara.Markdown("")
    with solara.Column() as main:
        _html("<h3>Where to spend curation</h3><p>The ecosystem's current total curation ratio as the budget; "
              "mean stable alignment (population mode); siloed: each owner curates for its own model.</p>")
        if not shown:
            solara.Button("Compare optimal and siloed curation", on_click=lambda: show(True))
            return main
        r = policy_result(model)
        if "message" in r:
            solara.Warning(r["message"])
            return main
        opt, sil = r["policies"]["optimal"], r["policies"]["siloed"]
        rows = "".join(f"<tr><td>{escape(label)}</td><td>{now:.3f}</td><td>{o:.3f}</td><td>{q:.3f}</td></tr>"
                       for label, now, o, q in r["rows"])
        _html("<table class='backfire'><tr><th>lever</th><th>now</th><th>optimal</th>"
              f"<th>siloed</th></tr>{rows}</table>"
              f"<p>Mean alignment: optimal {opt['objective']['predicted']:+.4f}, siloed "
              f"{sil['objective']['predicted']:+.4f}; <b>price of siloing {r['price_of_siloing']:+.4f}</b> "
              f"(budget {r['budget']:.3g}). Curate less than alone: "
              f"{escape(', '.join(r['curate_less']) or 'none')}.</p>")
    return main


def _same_knobs(a: dict, b: dict) -> bool:
    """Whether two knob settings build the same ecosystem (blank and ``file`` alike)."""
    norm = lambda knobs: {k: FILE if v in ("", None) else str(v) for k, v in knobs.items()}  # noqa: E731
    return norm(a) == norm(b)


@solara.component
def KnobCheck(knobs: dict, built: VizModel) -> solara.Element:
    """Above the knobs: why the chosen combination cannot be built, before Reset (after Reset the
    status says it: one message), else nothing."""
    problem = solara.use_memo(lambda: knob_problem(**knobs), [tuple(sorted(knobs.items()))])
    if problem is None or _same_knobs(knobs, built.knobs):
        return solara.Text("")
    return solara.Warning(f"Cannot build: {problem}", dense=True)


@solara.component
def EcosystemPage(scenario: str | None = None, **knobs: str) -> solara.Element:
    """The page of one browser session for ``scenario`` (default: :func:`initial_scenario`), first
    built with ``knobs``. The model lives in this component's state: each session has its own."""
    scenario = scenario or initial_scenario()
    if scenario.endswith(".toml"):
        scenario = name_of(scenario)
    first = solara.use_memo(lambda: VizModel(scenario_name=scenario, **knobs), [])
    model = solara.use_reactive(first)
    defaults = {k: v["value"] for k, v in model_params(scenario).items()} | {k: str(v) for k, v in knobs.items()}
    chosen = solara.use_reactive(defaults)
    interval = solara.use_reactive(PLAY_INTERVAL_MS)
    render_every = solara.use_reactive(1)
    threads = solara.use_reactive(False)
    built = model.value
    solara.Title(f"ecosystem · {built.heading()}")
    solara.Style(TABLE_CSS)
    with solara.AppBar():
        solara.AppBarTitle(f"ecosystem: {built.heading()}")
    with solara.Sidebar(), solara.Column():
        with solara.Card("Controls"):
            ModelController(model, model_parameters=chosen, play_interval=interval, render_interval=render_every,
                            use_threads=threads)
        with solara.Card("Knobs (press Reset to apply)"):
            KnobCheck(chosen.value, built)
            UserInputs(model_params(scenario, chosen.value, built.effective()),
                       on_change=lambda key, value: chosen.set({**chosen.value, key: value}))
    with solara.lab.Tabs(lazy=True):          # the analysis is computed when its tab is opened
        with solara.lab.Tab("Ecosystem"):
            with solara.Columns([1, 1]):
                NetworkView(built)
                SeriesView(built)
            StatusView(built)
            SamplesView(built)
        with solara.lab.Tab("Long-run analysis"):
            with solara.Columns([3, 2]):
                AnalysisView(built)
                PolicyView(built)


def make_page(scenario: str | None = None, **knobs: str) -> solara.Element:
    """The page for ``scenario`` first built with ``knobs``, as an element to render (benchmarks, tests)."""
    return EcosystemPage(scenario, **knobs)


@solara.component
def Page() -> solara.Element:
    """The page solara serves: one :func:`EcosystemPage` per browser session."""
    return EcosystemPage()
