"""How the host starts the MicroPython VM for the virtual board (one place for the path order).

Order matters: device code as compiled .mpy first (as on a board), then its
sources, the repo root (for boards.*), the simulator, and last the shadow
modules that replace the VM's built-in machine/time/select.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "host_tools" / "sim"
VM_PATH = [ROOT / "build" / "mpy" / "vm", ROOT / "device", ROOT, SIM, SIM / "shadow"]


def vm_env(first=()):
    """The environment for a VM process; `first` goes ahead of VM_PATH (e.g. tests/device)."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(p) for p in list(first) + VM_PATH) + ":.frozen"
    return env


def micropython():
    exe = Path(sys.executable).parent / "micropython"
    return str(exe) if exe.exists() else "micropython"
