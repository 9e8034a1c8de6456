"""Virtual time for the simulated board.

Time only moves when someone advances it (`advance`, `sleep_*`), and timers
fire at their exact due times on the way, so days of dosing run in seconds and
every run is reproducible. `ticks_us()`/`ticks_ms()` wrap at 2**30 like a
board's (every ~17.9 min for µs), unlike the 64-bit VM's own clock.
"""
try:
    import micropython

    _heap_lock = micropython.heap_lock
    _heap_unlock = micropython.heap_unlock
    # CPython's stand-in queues scheduled callbacks; the VM runs its own.
    _run_pending = getattr(micropython, "run_pending", None)
except ImportError:  # CPython: no heap to lock
    micropython = None

    def _heap_lock():
        return 0

    def _heap_unlock():
        return 0

    _run_pending = None


TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALF = TICKS_PERIOD >> 1
EPOCH_2000 = 946684800  # unix seconds at the MicroPython epoch


def ticks_diff(a, b):
    return ((a - b + TICKS_HALF) & TICKS_MAX) - TICKS_HALF


def ticks_add(t, delta):
    return (t + delta) & TICKS_MAX


class SimClock:
    """Monotonic virtual microseconds plus the timers that hang off them.

    missed_ticks: what a timer does with periods lost while interrupts were
    blocked (`blackout`): "backlog" fires them back to back afterwards, as
    rp2's alarm pool does after a flash write; "drop" skips them, as a soft
    timer whose scheduler queue overflowed would.
    """

    def __init__(self, start_us=0, wall_start=0):
        self.now_us = start_us
        self.wall_start = wall_start  # seconds since 2000-01-01 at now_us == 0
        self.timers = []
        self.missed_ticks = "backlog"
        self.irq_enabled = True
        self.fired = 0
        self.wdt = None  # the machine.WDT in force: it resets the board when starved

    # --- the `time` module surface -------------------------------------
    def ticks_us(self):
        return self.now_us & TICKS_MAX

    def ticks_ms(self):
        return (self.now_us // 1000) & TICKS_MAX

    def ticks_cpu(self):
        return self.now_us & TICKS_MAX

    def time(self):
        return self.wall_start + self.now_us // 1_000_000

    def sleep_us(self, us):
        self.advance(us)

    def sleep_ms(self, ms):
        self.advance(ms * 1000)

    def sleep(self, s):
        self.advance(int(s * 1_000_000))

    # --- moving time ----------------------------------------------------
    def next_due(self):
        due = None
        for t in self.timers:
            if due is None or t.due_us < due:
                due = t.due_us
        return due

    def advance(self, us):
        """Move time forward by `us`, firing every timer due on the way."""
        self.advance_to(self.now_us + us)

    def reset_hardware(self):
        """Power off: every timer stops and the watchdog with them."""
        self.timers[:] = []
        self.wdt = None

    def advance_to(self, target_us):
        timers = self.timers
        while True:
            t = None
            for x in timers:
                if t is None or x.due_us < t.due_us:
                    t = x
            nxt = t.due_us if t is not None and t.due_us <= target_us else target_us
            w = self.wdt
            if w is not None and nxt > w.fed_at + w.timeout_us:
                # Starved: the watchdog bites at that moment and resets the board.
                if w.fed_at + w.timeout_us > self.now_us:
                    self.now_us = w.fed_at + w.timeout_us
                self.reset_hardware()
                raise SystemExit("watchdog reset")  # the supervisor restarts the VM (WDT reset)
            if t is None or t.due_us > target_us:
                break
            if t.due_us > self.now_us:
                self.now_us = t.due_us
            t._fire()
            self.fired += 1
            if _run_pending is not None:
                _run_pending()
        if target_us > self.now_us:
            self.now_us = target_us

    def blackout(self, us):
        """Interrupts blocked for `us` (an RP2040 flash write): time passes, no timer fires."""
        end = self.now_us + us
        for t in self.timers:
            if t.due_us < end and self.missed_ticks == "drop":
                missed = (end - t.due_us + t.period_us - 1) // t.period_us
                t.due_us += missed * t.period_us
        self.now_us = end
        # "backlog": the overdue timers fire back to back at the next advance


CLOCK = SimClock()


class TimerCallbackError(Exception):
    pass


class SimTimer:
    """One virtual timer; `machine.Timer` wraps it."""

    def __init__(self, clock, period_us, callback, hard, periodic, owner):
        self.clock = clock
        self.period_us = period_us
        self.callback = callback
        self.hard = hard
        self.periodic = periodic
        self.owner = owner
        self.due_us = clock.now_us + period_us
        self.calls = 0
        self.error = None

    def _fire(self):
        clock = self.clock
        if self.periodic:
            self.due_us += self.period_us  # from the previous target: no drift
        else:
            clock.timers.remove(self)
        self.calls += 1
        cb = self.callback
        if cb is None:
            return
        if self.hard:
            _heap_lock()
            try:
                cb(self.owner)
            except Exception as e:  # a hard IRQ exception stops that timer
                _heap_unlock()
                self.error = e
                if self in clock.timers:
                    clock.timers.remove(self)
                print("Uncaught exception in IRQ callback handler")
                return
            except BaseException:  # KeyboardInterrupt, SystemExit: never leave the heap locked
                _heap_unlock()
                raise
            _heap_unlock()
        else:
            try:
                cb(self.owner)
            except Exception as e:
                self.error = e
                if self in clock.timers:
                    clock.timers.remove(self)
                print("Uncaught exception in scheduled callback")
