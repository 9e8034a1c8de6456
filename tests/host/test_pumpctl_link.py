"""pumpctl's serial link end to end: `pumpctl ports` and `pumpctl status` against a virtual board
served by `pumpctl sim serve --virtual --fresh` (docs/usb-link.md), and the failure paths:
a port that does not exist, a port where no pump answers, several boards without --port."""
import json
import os
import select
import subprocess
import time
import tty

import pytest

from served_board import ROOT, PUMPCTL, needs_vm, env_for, served_board
from served_board import pumpctl


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(env, port) of a virtual board in virtual time, powered off after the module."""
    env = env_for(tmp_path_factory.mktemp("pumpctl_link"))
    with served_board(env, "linktest") as port:
        yield env, port


@needs_vm
def test_ports_lists_the_virtual_board_with_its_versions(served):
    env, port = served
    r = pumpctl(env, "ports")
    assert r.returncode == 0, r
    assert port in r.stdout and "fw 0.1.0, protocol 1" in r.stdout, r.stdout
    r = pumpctl(env, "--json", "ports")
    assert r.returncode == 0, r
    rows = json.loads(r.stdout)
    assert [(b["port"], b["kind"], b["pump"], b["fw"], b["proto"]) for b in rows] == [(port, "virtual", True, "0.1.0", 1)]


@needs_vm
def test_status_finds_the_one_board_and_reports_its_state(served):
    env, port = served
    r = pumpctl(env, "status", "--json")
    assert r.returncode == 0, r
    st = json.loads(r.stdout)
    assert st["state"] in ("STOPPED", "RUNNING", "SUSPENDED", "ALARM_STOP"), st
    assert st["clock_confirmed"] is True  # hello set the pump's clock from the host's
    assert abs(st["wall"] - (int(time.time()) - 946684800)) < 3600 * 24 * 30  # virtual time runs ahead
    r = pumpctl(env, "status", "--port", port)
    assert r.returncode == 0, r
    assert "state      " + st["state"] in r.stdout and "uL/h" in r.stdout, r.stdout
    if 2 in st["alarms"]:  # a fresh board has an empty reservoir
        assert "RESERVOIR_EMPTY" in r.stdout


def test_a_port_that_does_not_exist_says_what_to_do(tmp_path):
    r = pumpctl(env_for(tmp_path), "status", "--port", str(tmp_path / "ttyNOPE"))
    assert r.returncode == 3, r
    assert "cannot open" in r.stderr and "pumpctl ports" in r.stderr, r.stderr
    r = pumpctl(env_for(tmp_path), "--json", "status", "--port", str(tmp_path / "ttyNOPE"))
    assert r.returncode == 3 and json.loads(r.stdout)["error"] == "link", r


def test_no_board_found_says_how_to_get_one(tmp_path, monkeypatch):
    from pumpctl import link
    monkeypatch.setattr(link, "candidates", lambda: [])
    with pytest.raises(link.LinkError, match="pumpctl sim serve"):
        link.find_port(None)


def test_a_port_where_no_pump_answers_is_not_a_pump(tmp_path):
    """A pseudo-terminal that answers like a REPL, not in the protocol: exit 4 and a hint."""
    master, slave = os.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    try:
        proc = subprocess.Popen(PUMPCTL + ["status", "--port", name, "--timeout", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                env=env_for(tmp_path), cwd=str(ROOT / "host_tools"))
        end = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < end:
            if select.select([master], [], [], 0.1)[0]:
                data = os.read(master, 4096)
                if b"\n" in data:
                    os.write(master, b"Traceback (most recent call last):\r\n>>> ")
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 4, (out, err)
        assert "not in the pump protocol" in err and "reset" in err, err
    finally:
        os.close(master)
        os.close(slave)


def test_several_boards_without_port_lists_them(tmp_path):
    """Two live registry entries: status refuses to guess and names both ports."""
    fds = [os.openpty() for _ in range(2)]
    try:
        reg = tmp_path / "boards"
        reg.mkdir()
        names = []
        for i, (m, s) in enumerate(fds):
            names.append(os.ttyname(s))
            (reg / ("b%d.json" % i)).write_text(json.dumps({"name": "b%d" % i, "port": names[-1], "pid": os.getpid()}))
        r = pumpctl(env_for(tmp_path), "status")
        assert r.returncode == 3, r
        assert "boards found; choose one with --port" in r.stderr and all(n in r.stderr for n in names), r.stderr
    finally:
        for m, s in fds:
            os.close(m)
            os.close(s)
