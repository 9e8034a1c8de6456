"""The virtual board's supervisor: Ctrl-C, soft reset, time modes, output that never
blocks the VM, the port registry and `pumpctl sim serve` (docs/usb-link.md).

Every wait is bounded; every board and process is stopped in a finally block.
"""
import json
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import supervisor

BIN = Path(sys.executable).parent
MPREMOTE = str(BIN / "mpremote")
needs_vm = pytest.mark.skipif(not (BIN / "micropython").exists(), reason="the MicroPython VM is not in the venv")


class Port:
    """The user side of the board's serial port, opened raw as mpremote would."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.seen = b""

    def write(self, data):
        os.write(self.fd, data)

    def read(self, timeout):
        end = time.monotonic() + timeout
        out = b""
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return out
            try:
                out += os.read(self.fd, 65536)
            except BlockingIOError:
                pass

    def expect(self, pattern, timeout=15.0):
        end = time.monotonic() + timeout
        while pattern not in self.seen:
            left = end - time.monotonic()
            assert left > 0, "no %r in %r" % (pattern, self.seen[-600:])
            self.seen += self.read(min(left, 0.2))
        i = self.seen.index(pattern) + len(pattern)
        before, self.seen = self.seen[:i], self.seen[i:]
        return before

    def close(self):
        os.close(self.fd)


@contextmanager
def board(tmp_path, **kw):
    sup = supervisor.Supervisor(tmp_path / "flash.img", **kw)
    try:
        sup.start()
        assert sup.wait_booted(20)
        yield sup
    finally:
        sup.stop()


@contextmanager
def port(sup):
    p = Port(sup.port)
    try:
        yield p
    finally:
        p.close()


def wait_for(cond, timeout=15.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def to_friendly_prompt(p):
    """Ctrl-C until the REPL answers (a pump busy in a flash write may need a second one)."""
    p.write(b"\x03")
    for _ in range(10):
        try:
            p.write(b"\r\x02")
            p.expect(b">>> ", timeout=1.5)
            return
        except AssertionError:
            p.write(b"\x03")
    p.expect(b">>> ")


# --- no VM needed -------------------------------------------------------------------

def test_output_is_cooked_like_a_boards_stdout():
    sup = object.__new__(supervisor.Supervisor)  # no image, no VM: just the output path
    for k, v in dict(_last_cr=False, _tail=b"", history=bytearray(), _connected=True, _out=bytearray(),
                     dropped=0, raw=False).items():
        setattr(sup, k, v)
    sup._emit(b"a\nb\r\nc\r")
    sup._emit(b"\nd\n")
    assert bytes(sup._out) == b"a\r\nb\r\nc\r\nd\r\n"
    sup._emit(b"raw REPL; CTRL-B to exit\r\n>")
    assert sup.raw
    sup._emit(b'\r\nMicroPython x\r\nType "help()" for more information.\r\n>>> ')
    assert not sup.raw
    sup._connected = False
    sup._emit(b"lost\n")
    assert sup.dropped == 6 and bytes(sup._out).endswith(b">>> ")


def test_registry_lists_live_boards_and_prunes_stale_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("DOSEKIT_BOARDS_DIR", str(tmp_path))
    assert supervisor.registry_dir() == tmp_path
    (tmp_path / "live.json").write_text(json.dumps({"name": "live", "port": "/dev/null", "pid": os.getpid()}))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    (tmp_path / "gone.json").write_text(json.dumps({"name": "gone", "port": "/dev/null", "pid": dead.pid}))
    assert [b["name"] for b in supervisor.list_boards()] == ["live"]
    assert not (tmp_path / "gone.json").exists()


# --- the board ------------------------------------------------------------------------

@needs_vm
def test_ctrl_c_stops_the_running_pump_safely_and_leaves_the_vm_at_the_prompt(tmp_path):
    with board(tmp_path) as sup, port(sup) as p:
        pid = sup.vm.pid
        time.sleep(0.3)  # main.py is serving the pump
        assert sup.boots == [("power-on", True)]
        p.write(b"\x03")
        p.expect(b"stopped by host")
        p.expect(b">>> ")
        assert sup.vm.pid == pid and sup.vm.poll() is None  # KeyboardInterrupt, not a dead VM
        # the firmware raised "therapy stopped by host" and logged it
        p.write(b"from pump.log import EventLog; from pump import events\r")
        p.write(b"print('stop-alarm', [e.a0 for e in EventLog('/state/log').records() "
                b"if e.code == events.EV_ALARM_RAISED])\r")
        line = p.expect(b"]\r\n")
        assert b"stop-alarm [" in line and b"14" in line.split(b"stop-alarm")[-1]


@needs_vm
def test_ctrl_c_interrupts_a_command_and_is_a_byte_at_the_prompt(tmp_path):
    with board(tmp_path) as sup, port(sup) as p:
        to_friendly_prompt(p)
        pid = sup.vm.pid
        p.write(b"\r\x01")
        p.expect(b"raw REPL; CTRL-B to exit\r\n>")
        p.write(b"\x03")  # at the raw prompt: clears the line, as on a board
        p.write(b"while True:\r\n  pass\x04")
        p.expect(b"OK")
        time.sleep(0.2)
        p.write(b"\x03")
        p.expect(b"KeyboardInterrupt")
        p.expect(b">")
        p.write(b"\x03\x03print(6*7)\x04")
        p.expect(b"42")
        assert sup.vm.pid == pid and sup.boots == [("power-on", True)]


@needs_vm
def test_soft_reset_at_the_friendly_prompt_runs_main_and_keeps_files(tmp_path):
    with board(tmp_path) as sup, port(sup) as p:
        to_friendly_prompt(p)
        p.write(b"f = open('/kept.txt', 'w'); f.write('yes'); f.close()\r")
        p.expect(b">>> ")
        pid = sup.vm.pid
        p.write(b"\x04")
        p.expect(b"MPY: soft reboot\r\n")
        wait_for(lambda: len(sup.boots) == 2)
        assert sup.boots[-1] == ("soft", True) and sup.vm.pid != pid
        time.sleep(0.3)
        to_friendly_prompt(p)  # main.py was running the pump again
        p.write(b"print(open('/kept.txt').read())\r")
        p.expect(b"yes\r\n")


@needs_vm
def test_input_during_a_reset_is_held_until_the_board_is_up(tmp_path):
    with board(tmp_path) as sup, port(sup) as p:
        to_friendly_prompt(p)
        p.write(b"\r\x01")
        p.expect(b"raw REPL; CTRL-B to exit\r\n>")
        p.write(b"\x04print('after reset')\x04")  # typed while the VM restarts
        p.expect(b"soft reboot\r\n")
        p.expect(b"raw REPL; CTRL-B to exit\r\n>")
        p.expect(b"after reset")
        assert sup.boots[-1] == ("soft", False)


def to_raw_repl(p):
    to_friendly_prompt(p)
    p.write(b"\r\x01")
    p.expect(b"raw REPL; CTRL-B to exit\r\n>")


@needs_vm
def test_the_vm_never_blocks_on_output(tmp_path):
    with board(tmp_path) as sup, port(sup) as p:
        to_raw_repl(p)
        # 2 MB of output that nobody reads: the VM finishes anyway
        p.write(b"for i in range(20000): print('%0100d' % i)\nprint('DO' + 'NE')\x04")
        wait_for(lambda: b"DONE" in sup.history, 30)
        assert sup.dropped > 0
    with board(tmp_path) as sup:
        p = Port(sup.port)
        try:
            to_raw_repl(p)
            p.write(b"for i in range(3000): print('%0100d' % i)\nprint('END' + 'ED')\x04")
        finally:
            p.close()  # gone: the rest is dropped, as a board drops output without DTR
        wait_for(lambda: b"ENDED" in sup.history, 30)
        with port(sup) as p2:
            assert p2.read(0.3) == b""  # nothing stale for the next connection
            p2.write(b"print('fresh')\x04")
            p2.expect(b"fresh")


POLL_PROBE = b"""import select, sys, vboard.clock as c
p = select.poll()
p.register(sys.stdin, select.POLLIN)
v0 = c.CLOCK.now_us
r0 = select._rt.ticks_ms()
for _ in range(%d):
    p.poll(%d)
print('virtual_ms', (c.CLOCK.now_us - v0) // 1000, 'real_ms', select._rt.ticks_diff(select._rt.ticks_ms(), r0))
\x04"""


@needs_vm
def test_poll_moves_virtual_time_by_the_timeout_or_with_the_real_clock(tmp_path):
    # (polls, timeout ms, speed) -> virtual ms expected, real ms expected (the main loop's wait)
    for n, timeout, speed, virtual, real in ((50, 1000, 0.0, 50_000, 0), (10, 100, 1.0, 1000, 1000),
                                             (20, 1000, 20.0, 20_000, 1000)):
        with board(tmp_path, speed=speed, fresh=True) as sup, port(sup) as p:
            to_raw_repl(p)
            p.write(POLL_PROBE % (n, timeout))
            p.expect(b"virtual_ms ")
            words = p.expect(b"\r\n").split()
            got_v, got_r = int(words[0]), int(words[2])
            if speed == 0:
                assert got_v == virtual and got_r < 500, words
            else:
                assert 0.85 * real <= got_r <= 1.5 * real + 300, words
                assert 0.9 * virtual <= got_v <= virtual * 1.5 + 300 * speed, words
                assert abs(got_v - got_r * speed) <= 250 * speed, words  # virtual follows real x speed


# --- pumpctl sim serve ------------------------------------------------------------------

@needs_vm
@pytest.mark.skipif(not os.path.exists(MPREMOTE), reason="mpremote is not in the venv")
def test_pumpctl_sim_serve_records_its_port_for_pumpctl_and_mpremote(tmp_path):
    env = dict(os.environ, DOSEKIT_BOARDS_DIR=str(tmp_path / "boards"), DOSEKIT_DATA_DIR=str(tmp_path / "data"))
    cmd = [sys.executable, "-c", "import sys; from pumpctl.cli import main; sys.exit(main())",
           "sim", "serve", "--name", "bench1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(supervisor.ROOT / "host_tools"))
    try:
        out = b""
        end = time.monotonic() + 20
        while b"mpremote connect " not in out or not out.endswith(b"\n"):
            assert time.monotonic() < end and proc.poll() is None, out
            if select.select([proc.stdout], [], [], 0.5)[0]:
                out += os.read(proc.stdout.fileno(), 4096)
        port_path = out.split(b"mpremote connect ")[1].split()[0].decode()
        entry = tmp_path / "boards" / "bench1.json"
        info = json.loads(entry.read_text())
        assert info["port"] == port_path and info["pid"] == proc.pid
        assert Path(info["image"]) == tmp_path / "data" / "boards" / "bench1.img"

        def mp(*args):
            r = subprocess.run([MPREMOTE, "connect", port_path] + list(args), capture_output=True, text=True,
                               timeout=20, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r
            return r.stdout

        assert mp("exec", "print(1)").strip() == "1"
        assert mp("resume", "exec", "print(2)").strip() == "2"
        assert "board.py" in mp("fs", "ls")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not entry.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
