"""Reservoir accounting: volume left, debited only from counted motor steps.

Units (pump/units.py): volume nL, calibration pL per microstep, wall time integer seconds.
Concentration is ng/mL as in pump/units.py (500 mcg/mL = 500_000); stored and compared,
never converted here.

Exact accounting: the reservoir keeps a base volume in pL (set at refill or when the
calibration changes) and the net motor steps counted since that base. The volume is
recomputed as base - steps * calibration, so there is no running remainder to lose:
2.7 M steps applied one at a time or at once give the same volume. `volume_nl` rounds
down (never reports more than is left). Intermediates are bigints: fine outside IRQs.

Alarm states: "ok", "low" (volume <= low threshold, default 2 mL), "empty" (volume <= 0;
the controller must stop the pump). A state gets worse at once and better only when the
volume is `hyst_nl` clear of the threshold, so motor back-off steps near a threshold do
not flap. `poll_edge()` reports each change once; the controller maps it to alarms:

    if res.poll_edge() is not None:
        alarms.set_group(reservoir.ALARM_GROUP, res.alarm_code(), now_ms)

Recovery after an unexpected reset: before it commands steps, the controller persists
`checkpoint_dict(ahead_steps)` (or a reserved count with `gen`); those steps are counted as
delivered already. `from_checkpoint` restores from it, so the recovered volume errs on
"less left" by at most the steps reserved but not yet delivered, never on "more left".
"""
from micropython import const
from collections import namedtuple

from pump.events import RESERVOIR_LOW, RESERVOIR_EMPTY

LOW_DEFAULT_NL = const(2_000_000)  # 2 mL (DOMAIN.md; 4 mL for some patients)
HYST_DEFAULT_NL = const(10_000)  # 10 uL: ~500 steps of the reference pump head
MAX_CAPACITY_NL = const(1_000_000_000)  # 1 L: a sanity bound, not a product limit
CAL_MIN_PL = const(100)  # 0.1 nL per microstep
CAL_MAX_PL = const(10_000_000)  # 10 uL per microstep (syringe rig: 0.41 uL)
MAX_CONC = const(1_000_000_000)  # 1 g/mL in ng/mL: a sanity bound (units.py owns limits)
DAY_S = const(86_400)
HORIZON_S = const(400 * 86_400)  # search for empty/low no further than 400 days

ALARM_GROUP = (RESERVOIR_LOW, RESERVOIR_EMPTY)
STATES = ("ok", "low", "empty")
_ALARM_FOR_LEVEL = (None, RESERVOIR_LOW, RESERVOIR_EMPTY)

RefillRecord = namedtuple("RefillRecord", ("t", "old_nl", "new_nl", "old_conc", "new_conc",
                                           "conc_changed"))


def _check_int(field, v, lo, hi, unit, hint):
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError("%s %r out of range: must be an integer %d..%d %s; %s"
                         % (field, v, lo, hi, unit, hint))


class Reservoir:
    def __init__(self, capacity_nl, cal_pl, volume_nl=0, conc=0,
                 low_nl=LOW_DEFAULT_NL, hyst_nl=HYST_DEFAULT_NL):
        _check_int("capacity", capacity_nl, 1, MAX_CAPACITY_NL, "nL",
                   "set the reservoir size (20 mL = 20_000_000)")
        _check_int("calibration", cal_pl, CAL_MIN_PL, CAL_MAX_PL, "pL/microstep",
                   "re-run the calibration")
        _check_int("volume", volume_nl, 0, capacity_nl, "nL", "enter the volume filled")
        _check_int("concentration", conc, 0, MAX_CONC, "", "enter the drug concentration")
        _check_int("low threshold", low_nl, 0, capacity_nl, "nL",
                   "set it within the reservoir capacity (default 2 mL)")
        _check_int("hysteresis", hyst_nl, 0, capacity_nl, "nL", "default 10 uL")
        self._cap = capacity_nl
        self._cal = cal_pl
        self._low = low_nl
        self._hyst = hyst_nl
        self._conc = conc
        self._base_pl = volume_nl * 1000
        self._steps = 0  # net microsteps since the base (reverse steps negative)
        self._gen = 0  # counts rebases (refill, calibration change)
        self.refill_t = None  # wall s of the last refill
        self.recovered = False  # True when restored from a checkpoint (volume is a bound)
        self._vol = volume_nl
        self._level = self._fresh_level(volume_nl)
        self._reported = 0  # the alarm side starts with no reservoir alarm

    # -- properties ----------------------------------------------------------------------
    @property
    def volume_nl(self):
        """Volume left in nL, rounded down (negative if steps ran on past empty)."""
        return self._vol

    @property
    def capacity_nl(self):
        return self._cap

    @property
    def conc(self):
        return self._conc

    @property
    def cal_pl(self):
        return self._cal

    @property
    def low_nl(self):
        return self._low

    @property
    def steps(self):
        """Net microsteps counted since the base (refill or calibration change)."""
        return self._steps

    @property
    def gen(self):
        """Base generation: changes at every refill and calibration change."""
        return self._gen

    # -- accounting ----------------------------------------------------------------------
    def apply_steps(self, net_steps):
        """Debit counted motor steps (reverse steps negative, credited back); returns the
        volume left in nL."""
        self._steps += net_steps
        self._update()
        return self._vol

    def set_calibration(self, cal_pl):
        """New pL per microstep from now on; the volume so far keeps the old calibration."""
        _check_int("calibration", cal_pl, CAL_MIN_PL, CAL_MAX_PL, "pL/microstep",
                   "re-run the calibration")
        self._base_pl -= self._steps * self._cal
        self._steps = 0
        self._cal = cal_pl
        self._gen += 1

    def set_low_threshold(self, low_nl):
        _check_int("low threshold", low_nl, 0, self._cap, "nL",
                   "set it within the reservoir capacity (default 2 mL)")
        self._low = low_nl
        self._level = self._fresh_level(self._vol)

    def refill(self, new_volume_nl, conc, now):
        """Record a refill to `new_volume_nl` at concentration `conc` (wall s `now`).
        Returns a RefillRecord for the log; conc_changed tells the controller to offer a
        bridge bolus. Rejects a volume outside 0..capacity or conc <= 0 with ValueError and
        changes nothing."""
        _check_int("refill volume", new_volume_nl, 0, self._cap, "nL",
                   "enter the volume actually in the reservoir, at most its capacity")
        _check_int("concentration", conc, 1, MAX_CONC, "",
                   "enter the concentration on the drug label")
        rec = RefillRecord(now, self._vol, new_volume_nl, self._conc, conc, conc != self._conc)
        self._base_pl = new_volume_nl * 1000
        self._steps = 0
        self._gen += 1
        self._conc = conc
        self.refill_t = now
        self.recovered = False
        self._vol = new_volume_nl
        self._level = self._fresh_level(new_volume_nl)
        return rec

    # -- states and alarms ---------------------------------------------------------------
    def state(self):
        """"ok", "low" or "empty" (with hysteresis on the way back)."""
        return STATES[self._level]

    def poll_edge(self):
        """The new state name once after each change of state(), else None."""
        if self._level == self._reported:
            return None
        self._reported = self._level
        return STATES[self._level]

    def alarm_code(self):
        """RESERVOIR_LOW, RESERVOIR_EMPTY or None for the current state (see ALARM_GROUP)."""
        return _ALARM_FOR_LEVEL[self._level]

    def _fresh_level(self, v):
        return 2 if v <= 0 else (1 if v <= self._low else 0)

    def _update(self):
        v = (self._base_pl - self._steps * self._cal) // 1000  # floor: never more than left
        self._vol = v
        worse = self._fresh_level(v)
        if worse > self._level:
            self._level = worse
        else:
            h = self._hyst
            better = 2 if v <= h else (1 if v <= self._low + h else 0)
            if better < self._level:
                self._level = better

    # -- time to low/empty ---------------------------------------------------------------
    def seconds_to(self, target_nl, volume_between, now, horizon_s=HORIZON_S, chunk_s=DAY_S):
        """Seconds from wall time `now` until the volume left reaches `target_nl`, given
        `volume_between(t0, t1)` = nL the program delivers between two wall times
        (non-decreasing in t1; e.g. lambda a, b: therapy.volume_between(program, a, b)).
        Steps forward in `chunk_s` chunks, then bisects to the second; every call asks for
        the volume from `now`, so the callee's rounding never accumulates. 0 if already
        there; None if not within `horizon_s` (e.g. pump stopped)."""
        need = self._vol - target_nl
        if need <= 0:
            return 0
        t = now
        end = now + horizon_s
        while t < end:
            t1 = t + chunk_s
            if t1 > end:
                t1 = end
            if volume_between(now, t1) >= need:
                lo, hi = t, t1  # vb(now, lo) < need <= vb(now, hi)
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if volume_between(now, mid) >= need:
                        hi = mid
                    else:
                        lo = mid
                return hi - now
            t = t1
        return None

    def seconds_to_low_and_empty(self, volume_between, now, horizon_s=HORIZON_S):
        """(seconds to the low threshold, seconds to empty), each None for "not within the
        horizon"."""
        return (self.seconds_to(self._low, volume_between, now, horizon_s),
                self.seconds_to(0, volume_between, now, horizon_s))

    def days_to_low_and_empty(self, volume_between, now, horizon_s=HORIZON_S):
        """The same in days (float, for display), each None for "never"."""
        lo, em = self.seconds_to_low_and_empty(volume_between, now, horizon_s)
        return (None if lo is None else lo / DAY_S, None if em is None else em / DAY_S)

    # -- persistence ---------------------------------------------------------------------
    def to_dict(self):
        return {"cap": self._cap, "cal": self._cal, "low": self._low, "hyst": self._hyst,
                "conc": self._conc, "base_pl": self._base_pl, "steps": self._steps,
                "gen": self._gen, "refill_t": self.refill_t}

    def checkpoint_dict(self, ahead_steps):
        """to_dict() with `ahead_steps` (>= 0) more net steps counted as delivered: persist
        it before commanding those steps; restoring it errs on "less left"."""
        if ahead_steps < 0:
            raise ValueError("ahead_steps %r: must be >= 0" % (ahead_steps,))
        d = self.to_dict()
        d["steps"] = self._steps + ahead_steps
        return d

    @classmethod
    def from_dict(cls, d):
        r = cls(d["cap"], d["cal"], 0, d["conc"], d["low"], d["hyst"])
        r._base_pl = d["base_pl"]
        r._steps = d["steps"]
        r._gen = d["gen"]
        r.refill_t = d["refill_t"]
        r._update()
        r._level = r._fresh_level(r._vol)
        return r

    @classmethod
    def from_checkpoint(cls, d, reserved_steps=None, gen=None):
        """Restore after an unexpected reset from the last persisted record `d` (to_dict()
        or checkpoint_dict()) and optionally a separately persisted reserved-ahead count of
        net steps since the base of generation `gen`. The larger count wins, so the
        recovered volume never over-estimates what is left (it errs on "less left" by at
        most the steps reserved but not delivered). A count from an older generation than
        `d` is ignored (d is newer); from a newer one, d is stale: ValueError."""
        r = cls.from_dict(d)
        if reserved_steps is not None:
            g = r._gen if gen is None else gen
            if g > r._gen:
                raise ValueError("checkpoint generation %d is newer than the reservoir record"
                                 " (%d): reservoir volume unknown; refill or re-enter it"
                                 % (g, r._gen))
            if g == r._gen and reserved_steps > r._steps:
                r._steps = reserved_steps
                r._update()
                r._level = r._fresh_level(r._vol)
        r.recovered = True
        return r
