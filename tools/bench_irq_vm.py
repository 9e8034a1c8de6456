"""IRQ handler cost on the MicroPython VM (run by tools/bench.py; prints JSON).

Every handler is called the same way a timer would call it (one positional
argument), in the same run, on the same minimal pin object, so the ratios
compare like with like. The engine's clock is a stand-in whose ticks advance
by a fixed step per call; its own cost is measured too.
"""
import gc
import json
import utime

from pump.dose import DoseEngine, interval_for
from pump.motor import StepDirDriver

N = 20000


class MinimalPin:
    def __init__(self):
        self.v = 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class FakeTicks:
    def __init__(self, step):
        self.now = 0
        self.step = step

    def ticks_us(self):
        self.now += self.step
        return self.now


class NoTimer:
    PERIODIC = 1

    def init(self, **kw):
        pass

    def deinit(self):
        pass


def per_call_ns(fn):
    gc.collect()
    i = 0
    t0 = utime.ticks_us()
    while i < N:
        fn(None)
        i += 1
    t1 = utime.ticks_us()
    return utime.ticks_diff(t1, t0) * 1000 // N


def loop_overhead_ns():
    i = 0
    t0 = utime.ticks_us()
    while i < N:
        i += 1
    return utime.ticks_diff(utime.ticks_us(), t0) * 1000 // N


def engine(advance_us, interval):
    pin = MinimalPin()
    drv = StepDirDriver(pin, MinimalPin())
    clock = FakeTicks(advance_us)
    eng = DoseEngine(drv, NoTimer(), clock.ticks_us, utime.ticks_diff, 4000)
    eng.set_interval(interval)
    return eng, pin


def main():
    pin = MinimalPin()

    def empty(t):
        pass

    def toggle(t):
        pin.value(1)
        pin.value(0)

    clock = FakeTicks(1)

    def ticks_only(t):
        clock.ticks_us()

    idle, _ = engine(1, interval_for(1, 3_600_000_000))  # 1 step/h: never due in this run
    busy, _ = engine(1000, interval_for(1000, 1_000_000))  # 1 ms interval, clock +1 ms per call
    results = {}
    for _round in range(3):  # best of 3: the host may be busy
        for name, fn in (("empty_callback", empty), ("pin_toggle", toggle), ("fake_ticks_call", ticks_only),
                         ("engine_no_step", idle._irq_ref), ("engine_step", busy._irq_ref)):
            ns = per_call_ns(fn)
            if name not in results or ns < results[name]:
                results[name] = ns
    over = loop_overhead_ns()
    results = {k: max(0, v - over) for k, v in results.items()}
    results["loop_overhead"] = over
    results["steps_emitted"] = busy.fwd
    print(json.dumps(results))


main()
