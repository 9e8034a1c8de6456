"""The simulated `machine` module: what the firmware uses of a board, on virtual time.

Semantics follow MicroPython's documentation and PLATFORM.md: periodic timers
reschedule from their previous target; hard callbacks run with the heap locked
and an exception stops that timer; `hard=True` raises where the simulated port
has no hard IRQs (as ESP32 >= 1.27 does).
"""
from vboard.clock import CLOCK, SimTimer

# What the simulated port supports; the virtual board's definition sets these.
PORT = {"hard_timer": True, "hard_error": ValueError}

# The last Pin made for each id (a test or the physics can find the firmware's pins),
# and hooks by pin id: hook(pin) runs when the firmware makes that pin (vboard.physics
# attaches its watchers this way, again after every simulated reset).
PINS = {}
PIN_HOOKS = {}


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 4
    IRQ_FALLING = 8

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self._v = 0
        self.rising = 0  # rising edges seen: a logic analyser on the pin
        self.watcher = None  # callable(pin, value) on every change; must not allocate
        if value is not None:
            self.value(value)
        PINS[id] = self
        hook = PIN_HOOKS.get(id)
        if hook is not None:
            hook(self)

    def init(self, mode=-1, pull=-1, value=None):
        self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v:
            if v:
                self.rising += 1
            self._v = v
            w = self.watcher
            if w is not None:
                w(self, v)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        self.id = id
        self._sim = None
        if kw:
            self.init(**kw)

    def init(self, mode=PERIODIC, period=-1, freq=-1, callback=None, hard=None, tick_hz=1000):
        if hard and not PORT["hard_timer"]:
            raise PORT["hard_error"]("hard IRQ not supported on this port")
        self.deinit()
        if freq != -1 and freq is not None:
            period_us = int(1_000_000 / freq + 0.5)
        else:
            period_us = period * (1_000_000 // tick_hz)
        if period_us < 1:
            raise ValueError("period too short")
        t = SimTimer(CLOCK, period_us, callback, bool(hard), mode == Timer.PERIODIC, self)
        CLOCK.timers.append(t)
        self._sim = t

    def deinit(self):
        t = self._sim
        if t is not None and t in CLOCK.timers:
            CLOCK.timers.remove(t)
        self._sim = None

    # test access
    def period_us(self):
        return self._sim.period_us if self._sim else None

    def calls(self):
        return self._sim.calls if self._sim else 0


# Analog inputs by pin id: callable() -> volts at the pin. The virtual board's
# physics set these; a Pico powered from USB reads VSYS/3 = 5.0 V / 3 on GP29.
ANALOG = {29: lambda: 5.0 / 3}


class ADC:
    """12-bit converter scaled to 16 bits; its input comes from ANALOG by pin id:
    a callable() -> volts (ideal conversion), or an object whose `adc_code()` returns
    the 12-bit code itself (vboard.physics: noise and DNL like an RP2040)."""

    CORE_TEMP = 4

    def __init__(self, pin):
        self.pin = pin
        self.pid = pin.id if isinstance(pin, Pin) else pin
        self.source = ANALOG.get(self.pid)

    def read_code(self):
        src = self.source
        if src is None:
            src = self.source = ANALOG.get(self.pid)  # wired up after the ADC was made
            if src is None:
                return 0
        if hasattr(src, "adc_code"):
            return src.adc_code()
        code = int(src() / 3.3 * 4095 + 0.5)
        return 0 if code < 0 else 4095 if code > 4095 else code

    def read_u16(self):
        code = self.read_code()
        return (code << 4) | (code >> 8)  # how the rp2 port scales 12 bits to 16


class WDT:
    """Cannot be stopped; starved past its timeout it resets the board: the
    simulated clock raises SystemExit("watchdog reset") at that virtual moment."""

    last = None

    def __init__(self, id=0, timeout=5000):
        self.timeout_ms = timeout
        self.timeout_us = timeout * 1000
        self.fed_at = CLOCK.now_us
        self.feeds = 0
        WDT.last = self
        CLOCK.wdt = self  # starved past its timeout, the clock resets the board

    def feed(self):
        self.fed_at = CLOCK.now_us
        self.feeds += 1

    def expired(self):
        return CLOCK.now_us - self.fed_at > self.timeout_ms * 1000


PWRON_RESET = 1
WDT_RESET = 3
_reset_cause = [PWRON_RESET]


def reset_cause():
    return _reset_cause[0]


def disable_irq():
    was = CLOCK.irq_enabled
    CLOCK.irq_enabled = False
    return was


def enable_irq(state=True):
    CLOCK.irq_enabled = state


def freq():
    return 125_000_000


def unique_id():
    return b"\xd0\x5e\x00\x00\x00\x00\x00\x01"


def reset():
    raise SystemExit("machine.reset()")
