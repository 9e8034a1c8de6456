"""`pumpctl flash` end to end: deploy through mpremote to a virtual board served by
`pumpctl sim serve --virtual --fresh` whose pump code was wiped first, a second flash that
copies nothing, and `--firmware`: UF2 to a stand-in boot drive, the esptool command line."""
import json
import subprocess
import sys

import pytest

from served_board import ROOT, needs_vm, env_for, served_board
from served_board import pumpctl as _pumpctl
MPREMOTE = [sys.executable, "-m", "mpremote"]
N_FILES = 1 + len(list((ROOT / "device" / "pump").glob("*.py"))) + 1  # main.py, pump/*.mpy, board.py


def pumpctl(env, *args, timeout=40):
    return _pumpctl(env, *args, timeout=timeout)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(env, port) of a virtual board in virtual time, powered off after the module."""
    env = env_for(tmp_path_factory.mktemp("pumpctl_flash"), USER="dosekit-test-nobody")
    with served_board(env, "flashtest") as port:
        yield env, port


WIPE = ("import os\n"
        "for n in os.listdir('/pump'): os.remove('/pump/' + n)\n"
        "os.remove('/main.py'); os.remove('/board.py')\n"
        "f = open('/pump/limits.py', 'w'); f.write('STALE = 1\\n'); f.close()\n"
        "print(sorted(os.listdir('/')), os.listdir('/pump'))")


@needs_vm
def test_flash_deploys_to_a_wiped_board_then_copies_nothing(served):
    env, port = served
    r = subprocess.run(MPREMOTE + ["connect", port, "resume", "exec", WIPE], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "['limits.py']" in r.stdout and "main.py" not in r.stdout, r

    r = pumpctl(env, "flash")  # the one board found; a served virtual board is --board virtual
    assert r.returncode == 0, r
    assert "pump/limits.py         removed" in r.stdout, r.stdout
    assert r.stdout.count(" copied ") == N_FILES and " unchanged\n" not in r.stdout, r.stdout
    assert "flashed %s: %d copied, 0 unchanged; pump answers: dosekit fw 0.1.0, protocol 1" % (port, N_FILES) \
        in r.stdout, r.stdout

    r = pumpctl(env, "--json", "flash", "--board", "virtual", "--port", port)
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    assert (out["copied"], out["unchanged"], out["fw"], out["proto"]) == (0, N_FILES, "0.1.0", 1), out
    assert {f["path"] for f in out["files"]} >= {"main.py", "pump/app.mpy", "board.py"}
    assert r.stderr.count(" unchanged\n") == N_FILES, r.stderr  # progress goes to stderr with --json

    r = pumpctl(env, "status", "--json")  # the board runs the pump
    assert r.returncode == 0 and json.loads(r.stdout)["state"], r


def test_dry_run_compiles_for_the_board_and_lists_the_files(tmp_path):
    r = pumpctl(env_for(tmp_path), "--json", "flash", "--board", "pico", "--dry-run")
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    assert [f["path"] for f in out["files"]][:2] == ["main.py", "pump/__init__.mpy"] and out["files"][-1]["path"] == "board.py"
    assert "mpy-cross armv6m" in r.stderr, r.stderr
    assert (ROOT / "build" / "flash" / "pico" / "pump" / "app.mpy").read_bytes()[:1] == b"M"


def test_uf2_is_copied_to_the_boot_drive(tmp_path):
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    fw = tmp_path / "micropython.uf2"
    fw.write_bytes(b"UF2\n" + bytes(508))
    r = pumpctl(env_for(tmp_path), "flash", "--firmware", str(fw), "--drive", str(drive))
    assert r.returncode == 0, r
    assert (drive / "micropython.uf2").read_bytes() == fw.read_bytes()
    assert "RP2040 boot drive" in r.stdout, r.stdout


def test_a_missing_boot_drive_says_what_to_do(tmp_path):
    fw = tmp_path / "micropython.uf2"
    fw.write_bytes(b"UF2\n")
    r = pumpctl(env_for(tmp_path), "flash", "--firmware", str(fw))  # USER has no mounts
    assert r.returncode == 3, r
    assert "no RP2040 boot drive found" in r.stderr and "BOOTSEL" in r.stderr and "--drive" in r.stderr, r.stderr
    r = pumpctl(env_for(tmp_path), "flash", "--firmware", str(fw), "--drive", str(tmp_path))
    assert r.returncode == 3 and "no INFO_UF2.TXT" in r.stderr, r


def test_esp32_bin_dry_run_prints_the_esptool_command(tmp_path):
    fw = tmp_path / "esp32.bin"
    fw.write_bytes(b"\xe9")
    r = pumpctl(env_for(tmp_path), "flash", "--firmware", str(fw), "--port", "/dev/ttyUSB0", "--dry-run")
    assert r.returncode == 0, r
    assert r.stdout.strip() == "esptool --chip esp32 --port /dev/ttyUSB0 write_flash -z 0x1000 %s" % fw, r.stdout
