"""The package's errors: one base that the command line reports as one ``error:`` line.

Every user error (a bad file, key, value, option or database) is an :class:`EcosystemError`;
its message names the file, the key and the bad value. The command line prints it and exits
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


def show(value: Any) -> str:
    """``value`` as it appears in an error message: its repr, cut to 60 characters."""
    try:
        text = repr(value)
    except ValueError:                       # an integer of more than 4300 digits
        return "an integer too large to print"
    return text if len(text) <= 60 else text[:57] + "..."


class EcosystemError(Exception):
    """A user error: the message is one line naming what is wrong and where."""


class ScenarioError(EcosystemError, ValueError):
    """A scenario that cannot be built; the message names file, key and value."""


class FlowError(EcosystemError, ValueError):
    """A data-flow graph that is not a valid ecosystem."""


class EventError(FlowError):
    """A scripted event that cannot be applied (unknown target, bad value, ...)."""


class StudyError(EcosystemError, ValueError):
    """A study file that cannot be expanded into runs."""


class StoreError(EcosystemError):
    """A results database that cannot be used for this study."""


class AnalysisError(EcosystemError, ValueError):
    """An ecosystem that cannot be analysed (e.g. no stable point found)."""


class UsageError(EcosystemError):
    """A command-line mistake (a bad option or a name that resolves to nothing)."""


class NumericalError(EcosystemError, ArithmeticError):
    """A run whose numbers left the finite floats (an overflow the input limits did not catch)."""


class OutputError(EcosystemError):
    """Results that cannot be written (a read-only folder, a full disk, a folder in a file's place)."""
