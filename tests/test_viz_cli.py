"""``ecosystem viz`` errors, and the rule that only ``viz/`` imports solara (no solara needed here)."""

from __future__ import annotations

import subprocess
import sys


def test_package_and_cli_do_not_import_solara():
    code = ("import sys, ecosystem, ecosystem.cli, ecosystem.cli.viz, viz.model; ecosystem.cli._parser(); "
            "assert 'solara' not in sys.modules, 'solara imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_viz_extra_is_a_one_line_error(monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "solara", None)        # import solara -> ImportError
    done = cli("viz", "default", "--port", "0")
    assert done.status == 2
    err = done.err
    assert err.startswith("error: the browser page needs the viz extra") and err.count("\n") == 1


def test_bad_scenario_and_port_are_usage_errors(cli):
    bad_name, bad_port = cli("viz", "no_such_scenario"), cli("viz", "default", "--port", "70000")
    assert bad_name.status == 2
    assert bad_port.status == 2
    err = (bad_name.err + bad_port.err).splitlines()
    assert err[0].startswith("error: no shipped scenario") and err[1].startswith("error: --port must be")
