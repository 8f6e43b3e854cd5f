"""``ecosystem --help`` lists every subcommand, in plain text."""

import pytest


def test_top_level_help_lists_every_command_plainly(capsys):
    from ecosystem import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and "``" not in text
    listed = [line.split()[0] for line in text.split("commands:")[1].splitlines()[2:] if line.startswith("    ")
              and not line.startswith("     ")]
    assert listed == [m.__name__.rpartition(".")[2] for m in cli.COMMANDS]
