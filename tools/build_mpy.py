"""Compiles every file that goes onto a board with mpy-cross, once per board architecture.

Fails on any compile error; prints the total .mpy size per architecture (make bench
reads it from build/mpy-sizes.json).
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHES = {"rp2": "armv6m", "esp32": "xtensawin"}


def board_files():
    """(source, path on the board) for device code, board definitions and adafruit_motor."""
    for p in sorted((ROOT / "device").rglob("*.py")):
        yield p, p.relative_to(ROOT / "device").as_posix()
    for p in sorted((ROOT / "boards").glob("*.py")):
        yield p, "boards/" + p.name
    try:
        import adafruit_motor
    except ImportError:
        return
    pkg = Path(adafruit_motor.__file__).parent
    for p in sorted(pkg.glob("*.py")):
        yield p, "lib/adafruit_motor/" + p.name


def mpy_cross():
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def build_for_vm():
    """Bytecode .mpy of device code for the MicroPython VM, laid out as on a board.

    The device suite imports these, as a board does: compiling .py at import
    would cost the VM heap that a board never spends."""
    out_root = ROOT / "build" / "mpy" / "vm"
    for src, dest in board_files():
        if not dest.startswith("pump/"):
            continue
        out = out_root / Path(dest).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        r = subprocess.run([mpy_cross(), "-O1", "-s", dest, "-o", str(out), str(src)], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit("mpy-cross failed on %s:\n%s" % (src, r.stderr))
    for stale in out_root.rglob("*.mpy"):
        if not (ROOT / "device" / stale.relative_to(out_root).with_suffix(".py")).exists():
            stale.unlink()
    return out_root


def main():
    sizes = {}
    failed = 0
    files = list(board_files())
    for port, arch in ARCHES.items():
        total = 0
        for src, dest in files:
            out = ROOT / "build" / "mpy" / port / Path(dest).with_suffix(".mpy")
            out.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([mpy_cross(), "-march=" + arch, "-O1", "-s", dest, "-o", str(out), str(src)],
                               capture_output=True, text=True)
            if r.returncode:
                failed += 1
                print("mpy-cross failed on %s (%s):\n%s" % (src.relative_to(ROOT), port, r.stderr))
                continue
            total += out.stat().st_size
        sizes[port] = {"files": len(files), "bytes": total}
        print("mpy-cross %-6s -march=%-9s %3d files, %6d bytes of .mpy" % (port, arch, len(files), total))
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "mpy-sizes.json").write_text(json.dumps(sizes, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
