"""One rule that turns what a user types into a scenario or study file.

- a text ending in ``.toml`` is a path (relative to the working directory, or, inside a
  study file, to that file's folder);
- anything else is the name of a shipped file in the repository's ``scenarios/`` folder:
  ``ring`` is ``scenarios/ring.toml``, ``stories/newcomer`` is
  ``scenarios/stories/newcomer/scenario.toml``, ``learned/digits`` is
  ``scenarios/learned/digits.toml``, and for studies ``topologies`` is
  ``scenarios/studies/topologies.toml``.

A folder of the working directory never hides a name. The CLI, :func:`ecosystem.load`,
study files, ``mesa.batch_run`` and the browser page all resolve through :func:`resolve`.
"""

from __future__ import annotations

from pathlib import Path

from ecosystem.errors import UsageError

SHIPPED = Path(__file__).resolve().parents[2] / "scenarios"
"""The shipped scenarios: the repository's ``scenarios/`` folder beside the package."""
DEFAULT_SCENARIO = "default"


def shipped(kind: str = "scenario") -> list[str]:
    """Names of the shipped scenarios (``default`` first) or studies (``kind="study"``)."""
    if kind == "study":
        return sorted(p.stem for p in (SHIPPED / "studies").glob("*.toml"))
    names = [p.stem for p in SHIPPED.glob("*.toml")]
    names += [f"{p.parent.parent.name}/{p.parent.name}" for p in SHIPPED.glob("*/*/scenario.toml")]
    names += [f"{p.parent.name}/{p.stem}" for p in SHIPPED.glob("*/*.toml") if p.parent.name != "studies"]
    return sorted(names, key=lambda n: (n != DEFAULT_SCENARIO, "/" in n, n))


def resolve(name: str | Path | None, kind: str = "scenario", base: Path | None = None) -> Path:
    """The file that ``name`` stands for (see the module docstring); ``None``: the default scenario.

    ``base``: the folder that relative paths start from (default: the working directory).
    Raises :class:`UsageError` for a name that is not shipped.
    """
    text = DEFAULT_SCENARIO if name is None else str(name)
    if text.endswith(".toml"):
        path = Path(text).expanduser()
        return path if base is None or path.is_absolute() else base / path
    folder = SHIPPED / "studies" if kind == "study" else SHIPPED
    for candidate in (folder / f"{text}.toml", folder / text / "scenario.toml"):
        if candidate.is_file() and ".." not in Path(text).parts:
            return candidate
    if not SHIPPED.is_dir():
        raise UsageError(f"{text!r} is not a path ending in .toml, and the shipped scenarios are not beside "
                         f"the package ({SHIPPED}); give a path to a .toml file")
    raise UsageError(f"no shipped {kind} {text!r} (shipped: {', '.join(shipped(kind))}); "
                     "a file of your own is a path ending in .toml")


def name_of(path: str | Path) -> str:
    """The shipped name of ``path`` if it is a shipped scenario, else the path itself (inverse of :func:`resolve`)."""
    path = Path(path).resolve()
    for name in shipped():
        if resolve(name).resolve() == path:
            return name
    return str(path)
