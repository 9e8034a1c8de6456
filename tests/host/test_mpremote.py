"""Real mpremote against the virtual board's pseudo-terminal (docs/usb-link.md).

One board (supervisor, VM, LittleFS image in a temporary directory) serves the
whole module; every mpremote call is bounded by a timeout.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import supervisor

MPREMOTE = str(Path(sys.executable).parent / "mpremote")
pytestmark = pytest.mark.skipif(not os.path.exists(MPREMOTE), reason="mpremote is not in the venv")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    sup = supervisor.Supervisor(tmp_path_factory.mktemp("vboard") / "flash.img", speed=1.0)
    try:
        sup.start()
        assert sup.wait_booted(20)
        yield sup
    finally:
        sup.stop()


def mpremote(board, *args, timeout=20):
    r = subprocess.run([MPREMOTE, "connect", board.port] + list(args), capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (args, r.stdout, r.stderr, bytes(board.history[-2000:]))
    return r.stdout


def vm_pid(board):
    return board.vm.pid


def test_exec_with_resume_keeps_the_vm(board):
    pid = vm_pid(board)
    assert mpremote(board, "resume", "exec", "print(1)").strip() == "1"
    assert vm_pid(board) == pid  # no soft reset with resume


def test_exec_without_resume_soft_resets_into_the_raw_repl(board):
    n = len(board.boots)
    out = mpremote(board, "exec", "import sys; print(sys.implementation.name, 6 * 7)")
    assert out.strip() == "micropython 42"
    assert board.boots[n:] == [("soft", False)]  # raw REPL soft reset: boot.py, not main.py
    assert b"MPY: soft reboot\r\n" in board.history


def test_fs_cp_and_ls_with_and_without_resume(board, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_bytes(b"dose\nkit\x00\xff" * 300)
    mpremote(board, "resume", "fs", "cp", str(src), ":hello.txt")
    listing = mpremote(board, "resume", "fs", "ls")
    assert "hello.txt" in listing and "main.py" in listing and "board.py" in listing
    back = tmp_path / "back.txt"
    mpremote(board, "fs", "cp", ":hello.txt", str(back))  # without resume: soft reset first
    assert back.read_bytes() == src.read_bytes()
    mpremote(board, "fs", "cp", str(src), ":lib_copy.txt")
    listing = mpremote(board, "fs", "ls", ":")
    assert "lib_copy.txt" in listing and "hello.txt" in listing


def test_the_board_filesystem_is_littlefs_at_root_and_survives_soft_resets(board):
    mpremote(board, "resume", "exec", "open('/persist.txt', 'w').write('kept')")
    pid = vm_pid(board)
    mpremote(board, "soft-reset")
    assert vm_pid(board) != pid  # the VM was restarted as a board soft-reboots
    out = mpremote(board, "resume", "exec",
                   "import os; print(open('/persist.txt').read(), os.statvfs('/')[0], 'pump' in os.listdir())")
    assert out.split() == ["kept", "4096", "True"]


def test_deployment_and_run_on_the_virtual_board(board, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import machine, time, board\nprint(board.MCU, machine.freq(), time.ticks_ms() >= 0)\n")
    out = mpremote(board, "run", str(script))
    assert out.split() == ["virtual", "125000000", "True"]


def test_machine_reset_is_a_hard_reset_that_runs_main(board):
    n = len(board.boots)
    subprocess.run([MPREMOTE, "connect", board.port, "resume", "reset"], capture_output=True,
                   timeout=20, stdin=subprocess.DEVNULL)
    end = time.monotonic() + 20
    while time.monotonic() < end and len(board.boots) == n:
        time.sleep(0.05)
    assert board.boots[n:] == [("hard", True)]
    assert board.wait_booted(20)
    # main.py runs the pump again; mpremote's Ctrl-C stops it and takes over
    assert mpremote(board, "exec", "print('back')").strip() == "back"
