"""Peak heap of the running firmware on the VM (run by tools/bench.py; prints JSON).

Every device module imported (as .mpy, as on a board), the pump booted on the
simulated board, a program confirmed and a simulated day dosed at 25 uL/h,
with the heap sampled at every main-loop pass. Exits non-zero if it does not
fit, which is how bench finds the smallest heap that works.
"""
import gc
import json

gc.collect()
base = gc.mem_alloc()

from pump import app, protocol, writer, schema  # noqa: E402,F401  (every device module main.py loads)
from boards import virtual as board  # noqa: E402

gc.collect()
device_code = gc.mem_alloc() - base
from vboard import machine, vtime  # noqa: E402
from vboard.clock import CLOCK  # noqa: E402
import vmtest  # noqa: E402

gc.collect()
sim_code = gc.mem_alloc() - base - device_code
peak = [0, 0]  # most heap in use (live + garbage), most live (sampled after a collect)
passes = [0]


def wait(ms):
    a = gc.mem_alloc()
    if a > peak[0]:
        peak[0] = a
    passes[0] += 1
    if passes[0] % 64 == 0:
        gc.collect()
        a = gc.mem_alloc()
        if a > peak[1]:
            peak[1] = a
    CLOCK.advance(ms * 1000)


loop = app.start(board, machine, vtime, wait, root=vmtest.tmpdir("heap"))
ctl = loop.ctl
gc.collect()
device_state = gc.mem_alloc() - base - device_code - sim_code
now = loop.now()
ctl.set_clock(820_000_000, now)
ctl.refill(20_000_000, 500_000, now)
cid, _ = ctl.stage("program", {"mode": "continuous", "conc_ng_ml": 500_000, "dose_ng_day": 300_000}, now)
ctl.confirm(cid, now)
ctl.action("start", now)
loop.run(86_400_000)
steps = ctl.engine.fwd
assert 29_999 <= steps <= 30_000, steps
print(json.dumps({"peak_alloc": peak[0] - base, "peak_live": peak[1] - base, "passes": passes[0], "device_code": device_code, "device_state": device_state,
                  "sim_code": sim_code, "steps_in_day": steps,
                  "heap_total": gc.mem_alloc() + gc.mem_free()}))
