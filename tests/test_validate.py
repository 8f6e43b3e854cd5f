"""``ecosystem validate`` warns about scripted events that cannot change the run (exit status 0)."""

from conftest import SHIPPED

RING = SHIPPED / "ring.toml"


def _event(at: int, action: str, target: str, value, every: int | None = None) -> str:
    text = f'\n[[events]]\nround = {at}\naction = "{action}"\ntarget = "{target}"\nvalue = {value}\n'
    return text + (f"every = {every}\n" if every else "")


def test_validate_warns_about_events_that_change_nothing(tmp_path, cli):
    path = tmp_path / "zero.toml"        # curation ratio 0: every curator's flows have weight 0
    path.write_text(RING.read_text().replace("curation_ratio = 0.4", "curation_ratio = 0.0")
                    + _event(5, "set_K", "users_m0", 8)               # nobody trains on users_m0
                    + _event(7, "set_K", "users_m2", 8)               # read from round 9 on: effective
                    + _event(9, "set_flow", "users_m2->m3", 0.2)
                    + _event(10, "set_real_share", "m1", 0.3)         # m1's real share is 0.3 already
                    + _event(10, "scale_real_share", "all", 1.0, every=10)
                    + _event(20, "set_real_share", "m4", 0.5))        # a real change
    done = cli("validate", path)
    assert done.status == 0 and done.out.startswith("ok: ")
    warnings = done.err.splitlines()
    assert all(line.startswith(f"warning: {path}: events[") for line in warnings)
    assert [line.split("events[")[1].split("]")[0] for line in warnings] == ["0", "3", "4"]
    assert "no model trains on the data of 'users_m0'" in warnings[0]
    assert "at round 10: the value is already in place" in warnings[1]
    assert len(warnings) == 3                 # the recurring event is reported once


def test_validate_is_quiet_on_the_shipped_scenarios(cli):
    files = sorted(SHIPPED.glob("*.toml")) + sorted(SHIPPED.glob("stories/*/scenario.toml"))
    done = cli("validate", *files)
    assert done.status == 0 and done.err == ""
