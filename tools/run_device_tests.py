"""Runs tests/device/test_*.py on the real MicroPython VM, one VM process per file.

One process per file keeps heaps independent (a file's peak heap is its own) and
lets two cores share the work. `HEAP` sets -X heapsize for every file, as on the
command line of `make test-device HEAP=...`.
"""
import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests" / "device"

sys.path.insert(0, str(ROOT / "host_tools"))
from sim.vmrun import vm_env as _vm_env, micropython  # noqa: E402  (the one VM path order)


def vm_env():
    return _vm_env(first=[TESTS])


def file_heap(name, heap):
    """A test file may ask for more heap in its first lines: `# vm-heap: 256K (why)`.
    Only for test harness weight; the firmware's own heap is measured by make bench."""
    with open(TESTS / (name + ".py")) as f:
        for _ in range(5):
            line = f.readline()
            if line.startswith("# vm-heap:"):
                return line.split(":", 1)[1].split()[0]
    return heap


def run_file(name, heap, timeout):
    heap = file_heap(name, heap)
    cmd = [micropython(), "-X", "heapsize=" + heap, str(TESTS / "vmrun.py"), name]
    try:
        p = subprocess.run(cmd, env=vm_env(), capture_output=True, text=True,
                           timeout=timeout, cwd=str(TESTS))
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace") + "\nTIMEOUT after %ds" % timeout, -1
    return name, rc, out


def summary(out):
    for line in reversed(out.splitlines()):
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "passed," and parts[3].startswith("failed"):
            return int(parts[0]), int(parts[2]), int(parts[4]) if len(parts) > 4 else 0
    return 0, 1, 0  # crashed before the summary: count the file as one failure


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="*", help="test module names (default: all)")
    ap.add_argument("--heap", default=os.environ.get("HEAP", "192K"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tools"))
    from build_mpy import build_for_vm

    build_for_vm()
    names = args.files or sorted(p.stem for p in TESTS.glob("test_*.py"))
    totals = [0, 0, 0]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for name, rc, out in pool.map(lambda n: run_file(n, args.heap, args.timeout), names):
            passed, failed, skipped = summary(out)
            if rc != 0 and failed == 0:
                failed = 1
            totals[0] += passed
            totals[1] += failed
            totals[2] += skipped
            status = "FAIL" if failed else "ok"
            print("%-4s %-28s %3d passed %3d failed  (heap %s)" % (status, name, passed, failed,
                                                                  file_heap(name, args.heap)))
            if failed or args.verbose:
                print("\n".join("    " + l for l in out.splitlines()))
    print("device suite on the MicroPython VM:")
    print("%d passed, %d failed, %d skipped" % tuple(totals))
    return 1 if totals[1] or not totals[0] else 0


if __name__ == "__main__":
    sys.exit(main())
