"""`pumpctl flash`: deploy the pump firmware to a board, or put MicroPython itself on it.

    pumpctl flash [--board pico|esp32_devkitc|virtual] [--port P] [--dry-run] [--json]
    pumpctl flash --firmware FILE.uf2 [--drive DIR]      # RP2040 boot drive (BOOTSEL)
    pumpctl flash --firmware FILE.bin --port P           # ESP32, through esptool

Deploying: device/pump/*.py is compiled with mpy-cross for the board (`-march=armv6m` rp2,
`xtensawin` esp32, plain bytecode for the virtual board) into build/flash/<board>/, then real
mpremote (its Python API: SerialTransport, as `mpremote connect P resume ...` does) copies
main.py, pump/*.mpy and boards/<board>.py as board.py, skipping every file whose sha256 on the
board already matches; a pump/x.py left on the board, which would shadow pump/x.mpy, is removed.
Then a hard reset (mpremote's `reset`) and `hello` over the pump protocol confirms the
firmware and protocol versions. Connecting stops a running pump (docs/usb-link.md).
`--dry-run` compiles and lists what would go where, without touching the board.

Exit codes as the other board commands: 3 port / boot drive, 4 no pump answered after the reset.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pumpctl.cli import register
from pumpctl import link as L
from pumpctl.board_commands import argparse_suppress, _fail

ROOT = L.ROOT
BOARDS = ROOT / "boards"
ARCH = {"rp2": "armv6m", "esp32": "xtensawin", "virtual": None}
ESPTOOL_OFFSET = "0x1000"
CONFIRM_TIMEOUT = 20.0  # seconds for the board to come back after the reset and answer hello
# Runs on the board (mpremote exec): sha256 of each path and the .py files in /pump.
_HASH_SCRIPT = """
import os
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    if hashlib is None:
        f.close()
        return '?'
    h = hashlib.sha256()
    b = bytearray(256)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
try:
    _py = [n for n in os.listdir('/pump') if n.endswith('.py')]
except OSError:
    _py = None
print('DOSEKIT', repr({'h': [_h(p) for p in %r], 'py': _py}))
"""


def board_names():
    return sorted(p.stem for p in BOARDS.glob("*.py") if not p.name.startswith("_"))


def load_board(name):
    return L.load_file(BOARDS / (name + ".py"), "_dosekit_board_" + name)


def mpy_cross():
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def build(board_name):
    """Compile for the board; [(local file, path on the board)] in deploy order."""
    mcu = load_board(board_name).MCU
    if mcu not in ARCH:
        raise ValueError("board %s has MCU %r; pumpctl flash knows %s" % (board_name, mcu, ", ".join(ARCH)))
    arch = ARCH[mcu]
    out_root = ROOT / "build" / "flash" / board_name
    files = [(ROOT / "device" / "main.py", "main.py")]
    for src in sorted((ROOT / "device" / "pump").glob("*.py")):
        dest = "pump/" + src.name
        out = out_root / "pump" / (src.stem + ".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [mpy_cross()] + (["-march=" + arch] if arch else []) + ["-O1", "-s", dest, "-o", str(out), str(src)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise ValueError("mpy-cross not found: run `make` in this checkout (it installs mpy-cross into .venv)")
        if r.returncode:
            raise ValueError("mpy-cross failed on %s:\n%s" % (src.relative_to(ROOT), r.stderr))
        files.append((out, "pump/" + src.stem + ".mpy"))
    files.append((BOARDS / (board_name + ".py"), "board.py"))
    return files


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def guess_board(port):
    """The board for `port` when --board is not given: a served virtual board is 'virtual'."""
    for b in L.virtual_boards():
        if b.get("port") == port:
            return "virtual"
    raise L.LinkError("which board is on %s? Name it with --board (%s)" % (port, "|".join(board_names())))


# --- deploy ------------------------------------------------------------------------------

def _say(args, text):
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


def _transport(port):
    try:
        from mpremote.transport_serial import SerialTransport
        from mpremote.transport import TransportError
    except ImportError:
        raise L.LinkError("mpremote is not installed: run `make` in this checkout (or pip install mpremote)")
    try:
        t = SerialTransport(port, baudrate=115200)
    except Exception as e:  # mpremote raises TransportError / SerialException with its own text
        text = str(e)
        hint = " (busy: close mpremote, a terminal or pumpctl that has it open)" if "lock" in text.lower() else ""
        raise L.LinkError("cannot open %s%s: %s\n  `pumpctl ports` lists the boards found" % (port, hint, text))
    return t, TransportError


def deploy(args, port, files):
    """Copy the files that differ; returns [{"path", "status", "bytes"}]. Resets the board."""
    t, TransportError = _transport(port)
    report = []
    try:
        try:
            t.enter_raw_repl(soft_reset=False)  # like `mpremote resume`: the watchdog stays fed
            out = t.exec(_HASH_SCRIPT % ([dest for _src, dest in files],)).decode("utf-8", "replace")
        except TransportError as e:
            raise L.LinkError("%s did not give mpremote a raw REPL (%s): is it a MicroPython board? "
                              "Put MicroPython on it first (pumpctl flash --firmware FILE)" % (port, e),
                              L.EXIT_NOT_PUMP, "not_micropython")
        line = [ln for ln in out.splitlines() if ln.startswith("DOSEKIT ")]
        if not line:
            raise L.LinkError("unexpected answer from the board while hashing its files: %r" % out[-200:],
                              L.EXIT_NOT_PUMP, "not_micropython")
        import ast
        state = ast.literal_eval(line[-1][len("DOSEKIT "):])
        if state["py"] is None:
            t.fs_mkdir("pump")
        shadowing = {"pump/" + n for n in state["py"] or []}
        for name in sorted(shadowing):
            t.fs_rmfile(name)
            _say(args, "  %-22s removed (a .py there would shadow the .mpy)" % name)
        for (src, dest), remote in zip(files, state["h"]):
            data = Path(src).read_bytes()
            if remote == hashlib.sha256(data).hexdigest():
                report.append({"path": dest, "status": "unchanged", "bytes": len(data)})
                _say(args, "  %-22s unchanged" % dest)
                continue
            t.fs_writefile(dest, data)
            report.append({"path": dest, "status": "copied", "bytes": len(data)})
            _say(args, "  %-22s copied  %6d bytes" % (dest, len(data)))
        _say(args, "resetting %s" % port)
        t.exec_raw_no_follow("import time, machine; time.sleep_ms(100); machine.reset()")  # mpremote `reset`
    except TransportError as e:
        raise L.LinkError("mpremote lost %s during the copy (%s): flash again" % (port, e))
    finally:
        t.close()
    return report


def confirm(port, timeout):
    """hello after the reset, retried until the pump answers (it boots first)."""
    end = time.monotonic() + timeout
    while True:
        try:
            with L.Link.open(port, timeout=2.0) as link:
                return link.hello
        except L.LinkError as e:
            if time.monotonic() >= end:
                raise L.LinkError("the files are on %s, but the pump did not answer after the reset: %s"
                                  % (port, e), L.EXIT_NOT_PUMP, "not_pump") from None
            time.sleep(0.3)


# --- --firmware -----------------------------------------------------------------------

def find_boot_drive(drive=None):
    """The RP2040 boot drive: `drive` if given, else a folder with INFO_UF2.TXT under the mounts."""
    if drive:
        if not (Path(drive) / "INFO_UF2.TXT").is_file():
            raise L.LinkError("%s is not an RP2040 boot drive (no INFO_UF2.TXT in it): hold BOOTSEL while "
                              "plugging the Pico in, then name its drive (RPI-RP2) with --drive" % drive,
                              L.EXIT_PORT, "no_drive")
        return Path(drive)
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
    looked = [Path("/media") / user, Path("/run/media") / user]
    for base in looked:
        try:
            for d in sorted(base.iterdir()):
                if (d / "INFO_UF2.TXT").is_file():
                    return d
        except OSError:
            continue
    raise L.LinkError("no RP2040 boot drive found (a drive with INFO_UF2.TXT, usually RPI-RP2, under %s): hold "
                      "BOOTSEL while plugging the Pico in and wait for the drive to mount, or name it with "
                      "--drive DIR" % " or ".join(str(p) for p in looked), L.EXIT_PORT, "no_drive")


def esptool_command(port, firmware):
    return ["esptool", "--chip", "esp32", "--port", port, "write_flash", "-z", ESPTOOL_OFFSET, str(firmware)]


def firmware(args):
    fw = Path(args.firmware)
    if not fw.is_file():
        raise ValueError("firmware file %s does not exist" % fw)
    out = {"firmware": str(fw), "dry_run": bool(args.dry_run)}
    if fw.suffix.lower() == ".uf2":
        drive = find_boot_drive(args.drive)
        out.update(method="uf2", drive=str(drive))
        if args.dry_run:
            _say(args, "would copy %s to the RP2040 boot drive %s" % (fw, drive))
        else:
            shutil.copyfile(fw, drive / fw.name)
            _say(args, "copied %s to the RP2040 boot drive %s: the board reboots into MicroPython; then "
                       "`pumpctl flash --board pico` deploys the pump" % (fw, drive))
    elif fw.suffix.lower() == ".bin":
        port = L.find_port(args.port)
        cmd = esptool_command(port, fw)
        out.update(method="esptool", command=cmd)
        line = " ".join(cmd)
        if args.dry_run:
            print(line, file=sys.stderr if getattr(args, "json", False) else sys.stdout)
        else:
            exe = shutil.which("esptool") or shutil.which("esptool.py")
            if not exe:
                raise L.LinkError("esptool is not installed: pip install esptool, then run (or let pumpctl run):\n  "
                                  + line, 1, "no_esptool")
            _say(args, line)
            r = subprocess.run([exe] + cmd[1:], stdin=subprocess.DEVNULL)
            out["returncode"] = r.returncode
            if r.returncode:
                raise L.LinkError("esptool failed (exit %d): hold BOOT while it connects, check the port"
                                  % r.returncode, 1, "esptool")
            _say(args, "MicroPython written to %s; then `pumpctl flash --board esp32_devkitc` deploys the pump" % port)
    else:
        raise ValueError("--firmware takes a .uf2 (RP2040) or a .bin (ESP32), not %s" % fw.name)
    if getattr(args, "json", False):
        print(json.dumps(out))
    return 0


# --- the command ----------------------------------------------------------------------

def setup(p):
    p.add_argument("--board", choices=board_names(),
                   help="board definition to deploy (default: virtual for a served virtual board)")
    p.add_argument("--port", help="serial port of the board (default: the one board found; see `pumpctl ports`)")
    p.add_argument("--dry-run", action="store_true", help="show what would be done; touch nothing")
    p.add_argument("--firmware", metavar="FILE", help="put MicroPython itself on the board: .uf2 (RP2040) or .bin (ESP32)")
    p.add_argument("--drive", metavar="DIR", help="the RP2040 boot drive for a .uf2 (default: found under /media)")
    p.add_argument("--timeout", type=float, default=CONFIRM_TIMEOUT,
                   help="seconds for the pump to answer after the reset (default %g)" % CONFIRM_TIMEOUT)
    p.add_argument("--json", action="store_true", default=argparse_suppress(), help="machine-readable output")


def flash(args):
    try:
        if args.firmware:
            return firmware(args)
        port = L.find_port(args.port) if not (args.dry_run and args.board and not args.port) else args.port
        board = args.board or guess_board(port)
        _say(args, "compiling device code for %s (mpy-cross %s)" % (board, ARCH[load_board(board).MCU] or "bytecode"))
        files = build(board)
        if args.dry_run:
            for src, dest in files:
                _say(args, "  %-22s <- %s" % (dest, Path(src).relative_to(ROOT)))
            if getattr(args, "json", False):
                print(json.dumps({"board": board, "port": port, "dry_run": True,
                                  "files": [{"path": d, "sha256": sha256(s)} for s, d in files]}))
            return 0
        _say(args, "deploying to %s with mpremote" % port)
        t0 = time.monotonic()
        report = deploy(args, port, files)
        hello = confirm(port, args.timeout)
    except L.LinkError as e:
        return _fail(args, e)
    copied = sum(1 for r in report if r["status"] == "copied")
    summary = {"board": board, "port": port, "files": report, "copied": copied,
               "unchanged": len(report) - copied, "fw": hello.get("fw"), "proto": hello.get("proto"),
               "board_name": hello.get("board"), "seconds": round(time.monotonic() - t0, 2)}
    _say(args, "flashed %s: %d copied, %d unchanged; pump answers: dosekit fw %s, protocol %s (%s)"
         % (port, copied, len(report) - copied, hello.get("fw"), hello.get("proto"), hello.get("board")))
    if getattr(args, "json", False):
        print(json.dumps(summary))
    return 0


register("flash", "deploy the pump firmware (mpy-cross + mpremote, unchanged files skipped) and confirm "
         "its version; --firmware puts MicroPython on the board", setup, flash)
