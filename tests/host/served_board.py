"""A virtual board served by `pumpctl sim serve --virtual --fresh` for pumpctl's end-to-end tests,
and pumpctl run as a subprocess against it (one copy for every test module that needs them)."""
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
needs_vm = pytest.mark.skipif(not (BIN / "micropython").exists(), reason="the MicroPython VM is not in the venv")
PUMPCTL = [sys.executable, "-c", "import sys; from pumpctl.cli import main; sys.exit(main())"]


def env_for(tmp, **extra):
    """pumpctl's environment with its board registry and data kept under `tmp`."""
    return dict(os.environ, DOSEKIT_BOARDS_DIR=str(tmp / "boards"), DOSEKIT_DATA_DIR=str(tmp / "data"), **extra)


def pumpctl(env, *args, timeout=20):
    return subprocess.run(PUMPCTL + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env, cwd=str(ROOT / "host_tools"))


@contextlib.contextmanager
def served_board(env, name):
    """Yield the port of a fresh virtual board in virtual time; power it off afterwards."""
    proc = subprocess.Popen(PUMPCTL + ["sim", "serve", "--virtual", "--fresh", "--quiet", "--name", name],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(ROOT / "host_tools"))
    try:
        out = b""
        end = time.monotonic() + 20
        while not out.endswith(b"\n"):
            assert time.monotonic() < end and proc.poll() is None, out
            if select.select([proc.stdout], [], [], 0.5)[0]:
                out += os.read(proc.stdout.fileno(), 4096)
        port = out.decode().strip().splitlines()[-1]
        assert port.startswith("/dev/"), out
        yield port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        proc.stdout.close()
