"""The dose engine: turns a step interval into motor steps from a timer IRQ.

Why it looks like this (numbers from PLATFORM.md):
- Clock-driven, not callback-counted. Each IRQ reads `ticks_us()` and counts
  down to the next step deadline, so late, bunched or missing callbacks (RP2040
  flash writes block IRQs ~46 ms; ESP32 timers are soft with ms jitter) never
  add or lose dose. Steps owed after a gap are repaid one per callback, never
  closer together than 1/catch-up rate (the motor's speed limit), so a gap
  never becomes a bolus. A step lands at most one timer period after its
  deadline and never before it: counted steps are ideal or ideal - 1.
- The timer follows the step interval: a periodic timer set just shorter than
  the interval (capped at `max_period_us`), re-initialised only when the rate
  changes or catch-up starts/ends. No idle fast tick.
- The countdown is kept as (whole seconds, microseconds), so intervals far
  beyond the ticks wrap window (1 step/h = 3.6e9 us) work with every
  intermediate inside +-2**30: on RP2040/ESP32 anything larger is a heap bigint,
  and the IRQ must not allocate. Between two IRQs at most `max_period_us` plus
  a blackout may pass; `ticks_diff` is valid up to 536 s, far beyond the
  watchdog's 8.4 s, so a longer silence means the board already reset.
- Sub-microsecond interval fractions accumulate Bresenham-style in 1/65536 us,
  so high rates stay exact over hours (7.2 M steps/h at 2,000 steps/s).
- Steps are counted where they are emitted into two wrapping counters
  (forward, reverse) that only the IRQ writes; the main loop reads differences,
  so no lock is needed and no counter ever grows into a bigint.
"""
from micropython import const

_US = const(1_000_000)
FRAC_ONE = const(65536)  # interval fraction unit: 1/65536 us
COUNT_MASK = const(0x1FFFFFFF)  # IRQ counters wrap so that count + 1 < 2**30
MAX_PERIOD_US = const(60_000_000)
# Owed time beyond 60 s is not repaid: no healthy board blocks interrupts that
# long (the watchdog resets at 8.4 s), and it keeps the countdown > -2**30.
_MAX_DEBT = const(-60_000_000)  # longest timer period we ask of a port
PERIOD_MARGIN = const(64)  # timer period = interval - interval/64: a callback never lags a step


def interval_for(steps, per_us):
    """Step interval for `steps` steps every `per_us` microseconds, as
    (whole_us, frac16), rounded to the nearest 1/65536 us (ties to the longer
    interval). None when stopped. pump.units builds every interval with it."""
    if steps <= 0:
        return None
    q = (per_us * FRAC_ONE * 2 + steps) // (steps * 2)
    if q < FRAC_ONE:
        raise ValueError("step rate above 1,000,000 steps/s; lower the rate")
    return q // FRAC_ONE, q % FRAC_ONE


class DoseEngine:
    """Owns one motor driver and one `machine.Timer`.

    `ticks_us`/`ticks_diff` come from `time` (the virtual board passes its
    wrapping clock). Only `_irq` (and `_next`) run in interrupt context; every
    other method runs in the main loop, which calls `service()` on every pass.
    """

    def __init__(self, driver, timer, ticks_us, ticks_diff, catchup_sps, max_period_us=MAX_PERIOD_US, disable_irq=None, enable_irq=None):
        if catchup_sps <= 0:
            raise ValueError("catch-up rate must be > 0 steps/s")
        self._drv = driver
        self._pulse = driver.pulse
        self._timer = timer
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        self._disable_irq = disable_irq
        self._enable_irq = enable_irq
        self.catchup_sps = catchup_sps
        self._gap = -(-_US // catchup_sps)  # minimum us between repaid steps
        self.max_period_us = max_period_us
        self.hard = None  # decided at the first arm: True if the port took hard=True
        # IRQ state: plain small ints only.
        self._running = False
        self._last = ticks_us()
        self._last_step = self._last
        self._cd_s = 0  # countdown to the next step: whole seconds ...
        self._cd_us = 0  # ... plus microseconds (<= 0 with _cd_s == 0 means due)
        self._i_s = 0  # interval: whole seconds, microseconds, 1/65536 us
        self._i_us = 0
        self._i_frac = 0
        self._err = 0
        self._dir = 1
        self.fwd = 0  # wrapping emitted-step counters (COUNT_MASK)
        self.rev = 0
        self._behind = False
        self._armed_behind = False
        self.debt_clamped = 0
        self._carry = None  # (remaining, interval) of the step in progress at stop, 1/65536 us
        self.period_us = 0  # the timer period in force (0: timer off)
        self.interval = None
        # Bound once: taking a bound method allocates, the IRQ must not.
        self._irq_ref = self._irq

    # ---- interrupt context -------------------------------------------------
    def _irq(self, _timer):
        now = self._ticks_us()
        el = self._ticks_diff(now, self._last)
        self._last = now
        if not self._running:
            return
        us = self._cd_us - (el if el > 0 else 0)
        s = self._cd_s
        if us <= 0 and s:
            b = (_US - us) // _US  # whole seconds to borrow so us > 0
            if b > s:
                b = s
            s -= b
            us += b * _US
            self._cd_s = s
        if s or us > 0:
            self._cd_us = us
            return
        if us < _MAX_DEBT:
            us = _MAX_DEBT  # interrupts dead this long: the board should have reset
            self.debt_clamped += 1  # the controller alarms on under-delivery
        # Repaying (or just repaid, timer still fast): never faster than the
        # catch-up rate. Only then is the last step recent enough for ticks_diff.
        if (self._behind or self._armed_behind) and self._ticks_diff(now, self._last_step) < self._gap:
            self._cd_us = us
            return
        self._last_step = now
        self._pulse()
        if self._dir > 0:
            self.fwd = (self.fwd + 1) & COUNT_MASK
        else:
            self.rev = (self.rev + 1) & COUNT_MASK
        # Load the next interval onto the countdown (<= 0: the step was due).
        b = self._err + self._i_frac
        if b >= FRAC_ONE:
            b -= FRAC_ONE
            us += 1
        self._err = b
        us += self._i_us
        s = self._i_s
        if us >= _US:
            us -= _US
            s += 1
        self._cd_s = s
        self._cd_us = us
        self._behind = s == 0 and us <= 0

    # ---- main loop ------------------------------------------------------------
    def service(self):
        """Switch the timer to or from catch-up when the IRQ says so.

        Called by the main loop on every pass, and right after anything that
        blocks interrupts (flash writes). Not done from the IRQ: re-arming a
        timer allocates, and `micropython.schedule` from a hard IRQ would need
        the scheduler locked, which the VM cannot show."""
        if self._running and self._behind != self._armed_behind:
            self._arm(self._period())

    def needs_service(self):
        return self._running and self._behind != self._armed_behind

    def _period(self):
        if self._behind:
            return self._gap // 2  # steps land 1 to 1.5 gaps apart: <= catch-up rate
        i = self._i_s * _US + self._i_us
        p = i - i // PERIOD_MARGIN
        return p if p < self.max_period_us else self.max_period_us

    def _arm(self, period_us):
        t = self._timer
        cb = self._irq_ref
        if period_us >= 1000:
            kw = {"period": period_us // 1000}
        else:
            kw = {"freq": _US / period_us}
        if self.hard is None:
            try:
                t.init(mode=t.PERIODIC, callback=cb, hard=True, **kw)
                self.hard = True
            except (TypeError, ValueError):  # TypeError: pre-1.26 ports; ValueError: ESP32 >= 1.27
                self.hard = False
                t.init(mode=t.PERIODIC, callback=cb, **kw)
        elif self.hard:
            t.init(mode=t.PERIODIC, callback=cb, hard=True, **kw)
        else:
            t.init(mode=t.PERIODIC, callback=cb, **kw)
        self.period_us = period_us
        self._armed_behind = self._behind

    def _critical(self):
        return self._disable_irq() if self._disable_irq else None

    def _end_critical(self, state):
        if self._enable_irq:
            self._enable_irq(state)

    def set_interval(self, interval):
        """Run at `interval` = (whole_us, frac16) per step, or stop with None.

        The fraction of the step in progress (or the steps owed) carries over
        to the new interval, so rate changes neither skip nor repeat dose."""
        if interval is None:
            self.stop()
            return
        whole, frac = interval
        if whole < 1 or not 0 <= frac < FRAC_ONE:
            raise ValueError("step interval must be >= 1 us")
        state = self._critical()
        try:
            now = self._ticks_us()
            el = self._ticks_diff(now, self._last)
            self._last = now
            new = whole * FRAC_ONE + frac
            if self._running and self.interval is not None:
                old = self.interval[0] * FRAC_ONE + self.interval[1]
                rem = (self._cd_s * _US + self._cd_us - max(el, 0)) * FRAC_ONE
                rem = rem * new // old  # same fraction of a step (or same debt) at the new rate
            elif self._carry is not None:
                rem = self._carry[0] * new // self._carry[1]  # the step left half-done at stop
            else:
                rem = new
            self._carry = None
            rem_us = -((-rem) // FRAC_ONE)  # round toward later: never early
            if rem_us > 0:
                self._cd_s, self._cd_us = divmod(rem_us, _US)
            else:
                self._cd_s, self._cd_us = 0, rem_us
            self._i_s, self._i_us = divmod(whole, _US)
            self._i_frac = frac
            self._err = 0
            self.interval = (whole, frac)
            self._behind = rem + new <= 0  # a step is due now and another after it
            self._running = True
            if rem_us <= 0 and not self._behind:
                self._irq(None)  # a step already due goes now, not one timer period late
        finally:
            self._end_critical(state)
        self._arm(self._period())

    def stop(self):
        """No more steps until the next set_interval. The part of the step in
        progress is kept (at most one step owed), so a suspend/resume or a rate
        pause neither loses nor adds dose; steps owed beyond one are dropped."""
        state = self._critical()
        try:
            if self._running and self.interval is not None:
                el = self._ticks_diff(self._ticks_us(), self._last)
                old = self.interval[0] * FRAC_ONE + self.interval[1]
                rem = (self._cd_s * _US + self._cd_us - max(el, 0)) * FRAC_ONE
                # keep up to one owed step and the progress into the next
                self._carry = (1 - old if rem <= -old else old if rem > old else rem, old)
            self._running = False
            self._behind = False
            self.interval = None
        finally:
            self._end_critical(state)
        self._timer.deinit()
        self.period_us = 0

    def set_direction(self, sign):
        """+1 delivers, -1 withdraws. Changes only while stopped: DIR needs setup time."""
        if self._running:
            raise ValueError("stop the engine before changing direction")
        self._drv.set_direction(sign)
        if self._drv.direction != self._dir:
            self._carry = None  # a half-done step the other way is not owed this way
        self._dir = self._drv.direction

    @property
    def running(self):
        return self._running

    @property
    def behind(self):
        """True while repaying steps owed after a gap (timer at the catch-up rate)."""
        return self._behind


class StepLedger:
    """Main-loop reader of the engine's wrapping counters: net and absolute steps."""

    def __init__(self, engine):
        self._engine = engine
        self._fwd = engine.fwd
        self._rev = engine.rev

    def take(self):
        """Steps emitted since the last call: (net signed, absolute)."""
        e = self._engine
        f = e.fwd
        r = e.rev
        df = (f - self._fwd) & COUNT_MASK
        dr = (r - self._rev) & COUNT_MASK
        self._fwd = f
        self._rev = r
        return df - dr, df + dr
