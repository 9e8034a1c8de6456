"""Every integer the dose IRQ computes stays inside +-2**30.

On RP2040/ESP32 a larger integer is a heap bigint, and the IRQ must not
allocate; the 64-bit VM's small ints reach 2**62, so it cannot show this.
Here the handler runs on CPython with every value it touches wrapped in an
int that fails on any result outside the 32-bit ports' small-int range.
"""
import random

from vboard.clock import TICKS_MAX, ticks_diff
from pump.dose import DoseEngine, interval_for, MAX_PERIOD_US
from vmtest import ON_VM, SkipTest

SMALL = 1 << 30
CHECKED = []


def _check(v):
    if not -SMALL <= v < SMALL:
        raise AssertionError("IRQ intermediate %d outside +-2**30" % v)
    return v


if not ON_VM:

    class B(int):
        """An int whose every arithmetic result is bounds-checked."""

        def _wrap(op):
            def f(self, other):
                r = getattr(int, op)(self, other)
                if r is NotImplemented:
                    return r
                CHECKED.append(1)
                return B(_check(r)) if isinstance(r, int) and not isinstance(r, bool) else r
            return f

        for _op in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
                    "__floordiv__", "__rfloordiv__", "__mod__", "__and__", "__rand__", "__neg__"):
            locals()[_op] = _wrap(_op) if _op != "__neg__" else (lambda self: B(_check(-int(self))))
        del _op


class Pin:
    def value(self, v=None):
        return 0


class Drv:
    direction = 1

    def __init__(self):
        self.pulse = lambda: None

    def set_direction(self, s):
        self.direction = s


class Timer:
    PERIODIC = 1

    def init(self, **kw):
        pass

    def deinit(self):
        pass


class Clock:
    def __init__(self):
        self.now = 0

    def ticks_us(self):
        return B(self.now & TICKS_MAX)

    def ticks_diff(self, a, b):
        return B(ticks_diff(int(a), int(b)))


def _wrap_state(eng):
    for name in ("_cd_s", "_cd_us", "_i_s", "_i_us", "_i_frac", "_err", "fwd", "rev", "_last", "_last_step", "_gap",
                 "debt_clamped"):
        setattr(eng, name, B(getattr(eng, name)))


def test_irq_integers_stay_inside_30_bits_for_every_rate_and_gap():
    if ON_VM:
        raise SkipTest("the VM's ints are 62-bit; this proof needs CPython's checked ints")
    rnd = random.Random(7)
    clock = Clock()
    steps_per_day = (1, 24, 600, 30_000, 864_000, 86_400_000, 172_800_000, 345_600_000)  # up to 4,000/s
    for spd in steps_per_day:
        eng = DoseEngine(Drv(), Timer(), clock.ticks_us, clock.ticks_diff, 4000)
        eng.set_interval(interval_for(spd, 86_400_000_000))
        _wrap_state(eng)
        eng.fwd = B((1 << 30) - 5)  # counters about to wrap
        for i in range(4000):
            # Elapsed between callbacks: anything ticks_diff can express, biased to the extremes.
            r = rnd.random()
            el = (1 << 29) - 1 if r < 0.05 else MAX_PERIOD_US if r < 0.2 else rnd.randrange(0, 2_000_000)
            clock.now += el
            eng._irq(None)
            eng._armed_behind = rnd.random() < 0.3
    assert len(CHECKED) > 100_000  # the checks really ran
