"""pumpctl config / limits / program continuous end to end against a virtual board served by
`pumpctl sim serve --virtual --fresh` (docs/usb-link.md): values with units round-trip, a bad value
is rejected by the host with the field and accepted units and changes nothing, a program is staged,
shown old vs new and confirmed only with --yes (no TTY: refused, nothing changed)."""
import json

import pytest

from served_board import needs_vm, env_for, served_board
from served_board import pumpctl
pytestmark = needs_vm


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(env, port) of a virtual board in virtual time, powered off after the module."""
    env = env_for(tmp_path_factory.mktemp("pumpctl_therapy"))
    with served_board(env, "therapytest") as port:
        yield env, port


def request(port, cmd, args=None):
    from pumpctl.link import Link
    with Link.open(port, timeout=5) as link:
        return link.request(cmd, args)


def config_json(env):
    r = pumpctl(env, "--json", "config")
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def test_config_set_get_round_trip_with_units(served):
    env, port = served
    r = pumpctl(env, "config", "set", "drug=morphine", "low=1.5mL", "dead_volume=0.1mL", "cal=0.0203uL/step")
    assert r.returncode == 0, r
    assert "1.500 mL" in r.stdout and "0.0203 uL/step" in r.stdout, r.stdout
    cfg = config_json(env)
    assert (cfg["drug"], cfg["low_nl"], cfg["dead_volume_nl"]) == ("morphine", 1_500_000, 100_000), cfg
    r = pumpctl(env, "config", "get", "--port", port)
    assert r.returncode == 0, r
    assert "morphine" in r.stdout and "1.500 mL" in r.stdout and "0.100 mL" in r.stdout, r.stdout


@pytest.mark.parametrize("bad, field, units", [("low=-1mL", "low", "nL, uL, mL"),
                                               ("cal=abc", "cal", "pL/step, nL/step, uL/step"),
                                               ("dead_volume=2mcg", "dead_volume", "nL, uL, mL")])
def test_a_bad_value_names_the_field_and_units_and_changes_nothing(served, bad, field, units):
    env, _port = served
    before = config_json(env)
    r = pumpctl(env, "config", "set", "drug=other", bad)
    assert r.returncode == 2, r
    assert r.stderr.startswith("pumpctl: %s:" % field) and units in r.stderr, r.stderr
    r = pumpctl(env, "--json", "config", "set", bad)
    assert r.returncode == 2 and json.loads(r.stdout)["error"] == "usage", r
    assert config_json(env) == before


def test_a_value_the_pump_rejects_exits_5_and_changes_nothing(served):
    env, _port = served
    before = config_json(env)
    r = pumpctl(env, "config", "set", "dead_volume=6mL")  # parses, but above the pump's 5 mL
    assert r.returncode == 5 and "dead_volume_nl" in r.stderr, r
    assert config_json(env) == before


def test_limits_in_user_units(served):
    env, _port = served
    r = pumpctl(env, "limits")
    assert r.returncode == 0, r
    assert "max_rate         100.0 uL/h" in r.stdout and "max_daily_dose   1000 mcg/day" in r.stdout, r.stdout
    r = pumpctl(env, "--json", "limits")
    assert json.loads(r.stdout)["limits"]["max_bolus_ng"] == 100_000, r


def test_program_continuous_confirms_with_yes_and_refuses_without_a_tty(served):
    env, port = served
    request(port, "refill", {"volume_nl": 10_000_000, "conc_ng_ml": 500_000})
    r = pumpctl(env, "program", "continuous", "250mcg/day", "--conc", "500mcg/mL", "--yes")
    assert r.returncode == 0, r
    for text in ("250 mcg/day", "0.500 mL/day", "20.833 uL/h", "confirmed change"):
        assert text in r.stdout, r.stdout
    assert request(port, "program")["dose_ng_day"] == 250_000
    request(port, "action", {"name": "start"})
    st = json.loads(pumpctl(env, "--json", "status").stdout)
    assert (st["state"], st["rate_nl_h"]) == ("RUNNING", 20_833), st
    assert "20.833 uL/h" in pumpctl(env, "status").stdout

    # no TTY, no --yes: refused before anything is sent
    r = pumpctl(env, "program", "continuous", "12.5uL/h", "--conc", "500mcg/mL")
    assert r.returncode == 2 and "--yes" in r.stderr, r
    assert json.loads(pumpctl(env, "--json", "status").stdout)["rate_nl_h"] == 20_833
    assert request(port, "program")["dose_ng_day"] == 250_000

    # a flow, with --json, while running: the new rate takes effect
    r = pumpctl(env, "--json", "program", "continuous", "12.5uL/h", "--conc", "500mcg/mL", "--yes")
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    assert out["confirmed"] and out["summary"]["new"]["rate_nl_h"] == 12_500, out
    assert out["summary"]["old"]["text"]["dose"] == "250 mcg/day", out
    assert json.loads(pumpctl(env, "--json", "status").stdout)["rate_nl_h"] == 12_500


def test_program_rejects_a_quantity_of_the_wrong_kind(served):
    env, _port = served
    r = pumpctl(env, "program", "continuous", "2mL", "--conc", "500mcg/mL", "--yes")
    assert r.returncode == 2 and "DOSE_OR_RATE" in r.stderr and "mcg/day" in r.stderr and "uL/h" in r.stderr, r
    r = pumpctl(env, "program", "continuous", "250mcg/day", "--conc", "500", "--yes")
    assert r.returncode == 2 and "conc" in r.stderr and "mcg/mL" in r.stderr, r
