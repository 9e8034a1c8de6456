"""Supply/battery monitor and service-life counters.

PowerMonitor reads the supply through an ADC (`read_u16()`) behind a divider and turns it
into integer millivolts, then into a state with three falling thresholds:
  "ok" > low_mv >= "low" > eri_mv >= "eri" > eos_mv >= "eos"
(low battery, elective replacement indicator, end of service). Noise handling, for the
RP2040 ADC (~1 LSB RMS noise, DNL spikes at codes 512/1536/2560/3584) and for supply dips
while the motor steps:
- each reading is the mean of `samples` conversions with the lowest and highest dropped;
- a state gets worse when the reading is at or below a threshold, better only when it is
  `hyst_mv` above it;
- a change needs `confirm` consecutive readings that agree.
Pico: VSYS/3 on ADC3 (GPIO29), 3.3 V reference -> divider 3/1, vref_mv 3300 (defaults).
A board without a voltage input has no monitor: the controller keeps None, raises no
battery alarm.

ServiceLife counts hours of operation and motor revolutions for persistence as a plain dict.
"""
from micropython import const

from pump.events import BATTERY_LOW, ERI, END_OF_SERVICE

# Defaults for a 1-cell Li-ion supply (4.2 V full); board/config data overrides them.
LOW_MV = const(3600)
ERI_MV = const(3450)
EOS_MV = const(3300)
HYST_MV = const(50)
_FULL = const(65535)

ALARM_GROUP = (BATTERY_LOW, ERI, END_OF_SERVICE)
STATES = ("ok", "low", "eri", "eos")
_ALARM_FOR_LEVEL = (None, BATTERY_LOW, ERI, END_OF_SERVICE)


class PowerMonitor:
    def __init__(self, adc, divider_num=3, divider_den=1, vref_mv=3300,
                 low_mv=LOW_MV, eri_mv=ERI_MV, eos_mv=EOS_MV, hyst_mv=HYST_MV,
                 samples=8, confirm=3):
        if not (divider_num > 0 and divider_den > 0 and vref_mv > 0):
            raise ValueError("divider %r/%r and vref_mv %r must be > 0: set them from the"
                             " board's divider resistors" % (divider_num, divider_den, vref_mv))
        if not low_mv >= eri_mv >= eos_mv > 0:
            raise ValueError("battery thresholds low %r >= eri %r >= eos %r > 0 mV required:"
                             " order them" % (low_mv, eri_mv, eos_mv))
        if not 0 <= hyst_mv <= 1000:
            raise ValueError("hyst_mv %r out of range: must be 0..1000 mV" % (hyst_mv,))
        if not 1 <= samples <= 64:
            raise ValueError("samples %r out of range: must be 1..64" % (samples,))
        if not 1 <= confirm <= 100:
            raise ValueError("confirm %r out of range: must be 1..100 readings" % (confirm,))
        self._adc = adc
        self._num = vref_mv * divider_num
        self._den = _FULL * divider_den
        self._th = (low_mv, eri_mv, eos_mv)
        self._hyst = hyst_mv
        self._n = samples
        self._confirm = confirm
        self.mv = None  # last reading
        self._level = 0
        self._cand = 0
        self._count = 0

    def read_mv(self):
        """One reading in integer mV: mean of `samples` conversions, extremes dropped."""
        adc = self._adc
        n = self._n
        total = 0
        lo = 1 << 16
        hi = -1
        for _ in range(n):
            v = adc.read_u16()
            total += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        if n >= 4:
            total -= lo + hi
            n -= 2
        den = self._den * n
        return (total * self._num + den // 2) // den

    def update(self):
        """Take a reading; returns the new state name when the state changed, else None."""
        mv = self.read_mv()
        self.mv = mv
        worse = 0
        better = 0
        for t in self._th:
            if mv <= t:
                worse += 1
            if mv <= t + self._hyst:
                better += 1
        lvl = self._level
        cand = worse if worse > lvl else (better if better < lvl else lvl)
        if cand == lvl:
            self._count = 0
            return None
        if cand != self._cand:
            self._cand = cand
            self._count = 0
        self._count += 1
        if self._count < self._confirm:
            return None
        self._level = cand
        self._count = 0
        return STATES[cand]

    def state(self):
        """"ok", "low", "eri" or "eos"."""
        return STATES[self._level]

    def alarm_code(self):
        """BATTERY_LOW, ERI, END_OF_SERVICE or None (one at a time; see ALARM_GROUP)."""
        return _ALARM_FOR_LEVEL[self._level]


_CFG_KEYS = ("divider_num", "divider_den", "vref_mv", "low_mv", "eri_mv", "eos_mv",
             "hyst_mv", "samples", "confirm")
_CFG_DEFAULTS = (3, 1, 3300, LOW_MV, ERI_MV, EOS_MV, HYST_MV, 8, 3)


def monitor_for(adc, cfg=None):
    """The monitor for a board: None when the board has no voltage input (adc is None), so
    no battery alarm is ever raised. `cfg` is the board's SUPPLY dict: PowerMonitor argument
    names (divider_num, divider_den, vref_mv, low_mv, eri_mv, eos_mv, hyst_mv, samples,
    confirm) to values, plus "adc" (the pin the caller built `adc` from); any other name is
    a ValueError. Board without SUPPLY: monitor_for(None, None) -> None."""
    if adc is None:
        return None
    cfg = cfg or {}
    for k in cfg:
        if k != "adc" and k not in _CFG_KEYS:
            raise ValueError("power option %r unknown: allowed are %s"
                             % (k, ", ".join(_CFG_KEYS)))
    args = [cfg.get(k, d) for k, d in zip(_CFG_KEYS, _CFG_DEFAULTS)]
    return PowerMonitor(adc, *args)


class ServiceLife:
    """Hours of operation (uptime summed over boots) and motor revolutions (absolute steps:
    wear counts both directions). Persist `to_dict()`; time since the last persist before a
    reset is lost, so the counters err low by at most one persist interval."""

    def __init__(self, steps_per_rev=3200, ms=0, steps=0):
        if not steps_per_rev > 0:
            raise ValueError("steps_per_rev %r must be > 0 (3200 for 200 steps x 16)"
                             % (steps_per_rev,))
        self._spr = steps_per_rev
        self.ms = ms  # operating time, ms (a bigint after 12 days: fine outside IRQs)
        self.steps = steps  # absolute microsteps
        self._last = None  # uptime ms at the last tick of this boot

    def tick(self, now_ms):
        """Add the uptime since the previous tick; the first tick of a boot only sets the
        reference (uptime restarts at every boot)."""
        last = self._last
        if last is not None and now_ms > last:
            self.ms += now_ms - last
        self._last = now_ms

    def add_steps(self, steps):
        """Count motor microsteps (sign ignored: reverse steps wear the motor too)."""
        self.steps += steps if steps >= 0 else -steps

    @property
    def hours(self):
        return self.ms // 3_600_000

    @property
    def revolutions(self):
        return self.steps // self._spr

    def to_dict(self):
        return {"ms": self.ms, "steps": self.steps}

    @classmethod
    def from_dict(cls, d, steps_per_rev=3200):
        return cls(steps_per_rev, d["ms"], d["steps"])
