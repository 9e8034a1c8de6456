"""Therapy: programs -> basal rate over time, boluses, demand-bolus ledger, state machine.

Time: every `t`/`now` is wall time, integer seconds since 2000-01-01 (the MicroPython
epoch), injected by the caller. The device clock is local time: flex schedules use
t % 86400 as the time of day (no time zones, no DST; a clock change shifts the
schedule, so set the clock before programming). Titration counts from the program's
`start_s` (the wall time it took effect; pump.staging fills it in at confirm).

Rates are nL/h, doses ng, dose rates ng/day, volumes nL, concentrations ng/mL
(pump.units). A dose-based program keeps its doses and converts them with its own
concentration (rounding down: less delivered); a new concentration is a new program.
"""
from micropython import const

from pump import units
from pump.units import DOSE, DOSE_RATE, VOLUME, FLOW, DURATION, S_PER_DAY, S_PER_H
from pump.limits import (FieldError, int_field, opt_int_field, no_extra, check_conc, MIN_BOLUS_S, MAX_BOLUS_S,
                         MAX_FLEX_STEPS, MAX_DEMAND_24H, MIN_TITRATION_EVERY_S,
                         MAX_TITRATION_EVERY_S, MAX_TITRATION_STEPS, ABS_MAX_DAILY_DOSE,
                         ABS_MAX_BOLUS, ABS_MAX_PRIME, MAX_DEMAND_LOCKOUT_S)

try:
    from typing import Optional, List, Tuple  # noqa: F401
except ImportError:
    pass

STOPPED_MODE = "stopped"
CONTINUOUS = "continuous"
FLEX = "flex"
TITRATION = "titration"
MODES = (STOPPED_MODE, CONTINUOUS, FLEX, TITRATION)

_MAX_FLOW = const(1_000_000_000)  # 1 L/h: field sanity only; the motor max is checked by limits
_MAX_DEMAND_S = const(3600)
_MAX_BRIDGE_S = const(30 * 86400)
_FLAT = (0, 1, 3600, 0)  # the ramp of a program that is not a titration

# ---- therapy state machine (the controller enforces it) ------------------------------

STOPPED = "STOPPED"  # no delivery; program kept
RUNNING = "RUNNING"  # delivering the program (+ boluses)
SUSPENDED = "SUSPENDED"  # delivery paused on purpose; resume continues the same program
ALARM_STOP = "ALARM_STOP"  # fail-safe stop after a high-priority fault; motor off
SELFTEST = "SELFTEST"  # power-on self-test; motor off
STATES = (STOPPED, RUNNING, SUSPENDED, ALARM_STOP, SELFTEST)

# old state -> states it may move to. SELFTEST -> RUNNING/SUSPENDED/STOPPED restores the
# state saved before power loss (a patient must not go into withdrawal because of a
# reset); ALARM_STOP leaves only through an explicit clear (-> STOPPED, then start) or
# a new self-test, never straight back to delivery.
TRANSITIONS = {
    SELFTEST: (STOPPED, RUNNING, SUSPENDED, ALARM_STOP),
    STOPPED: (RUNNING, ALARM_STOP, SELFTEST),
    RUNNING: (SUSPENDED, STOPPED, ALARM_STOP),
    SUSPENDED: (RUNNING, STOPPED, ALARM_STOP),
    ALARM_STOP: (STOPPED, SELFTEST),
}
# user action -> (states it is allowed in, resulting state). "confirm" (a staged change)
# keeps the state; "fault" is the one fail-safe path.
ACTIONS = {
    "start": ((STOPPED,), RUNNING),
    "stop": ((RUNNING, SUSPENDED), STOPPED),
    "suspend": ((RUNNING,), SUSPENDED),
    "resume": ((SUSPENDED,), RUNNING),
    "fault": ((SELFTEST, STOPPED, RUNNING, SUSPENDED), ALARM_STOP),
    "clear": ((ALARM_STOP,), STOPPED),
    "selftest": ((STOPPED, ALARM_STOP), SELFTEST),
    "confirm": ((STOPPED, RUNNING, SUSPENDED, ALARM_STOP), None),
}
# states in which a bolus may start (prime/clinician bolus with the basal stopped is normal)
BOLUS_STATES = (RUNNING, STOPPED)


class TransitionError(ValueError):
    """A state change the therapy state machine does not allow."""


def check_transition(old, new):
    """True if old -> new is allowed, False if old == new (no-op); TransitionError otherwise."""
    if old not in TRANSITIONS:
        raise TransitionError("unknown therapy state %r; states: %s" % (old, ", ".join(STATES)))
    if new == old:
        return False
    if new not in TRANSITIONS[old]:
        raise TransitionError("therapy state %s cannot change to %r; allowed from %s: %s"
                              % (old, new, old, ", ".join(TRANSITIONS[old])))
    return True


def check_action(state, action):
    """The state `action` leads to from `state` (None: unchanged), or TransitionError."""
    if action not in ACTIONS:
        raise TransitionError("unknown action %r; actions: %s" % (action, ", ".join(sorted(ACTIONS))))
    allowed, new = ACTIONS[action]
    if state not in allowed:
        raise TransitionError("cannot %s in state %s; allowed in: %s" % (action, state, ", ".join(allowed)))
    return new


def bolus_blocked_by_state(state):
    """Reason text when no bolus may start in `state`, else None."""
    if state in BOLUS_STATES:
        return None
    if state == SELFTEST:
        return "no bolus during the power-on self-test"
    if state == ALARM_STOP:
        return "no bolus while stopped by an alarm; clear the alarm first"
    return "no bolus while therapy is %s; resume first" % state


# ---- demand-bolus settings ------------------------------------------------------------

class Demand:
    """Patient-activated bolus settings: dose per bolus (ng), duration (s), lockout (s,
    start to start, >= duration) and max boluses in any 24 h."""

    KEYS = ("dose_ng", "duration_s", "lockout_s", "max_24h")

    def __init__(self, dose_ng, duration_s, lockout_s, max_24h):
        self.dose_ng = dose_ng
        self.duration_s = duration_s
        self.lockout_s = lockout_s
        self.max_24h = max_24h

    @classmethod
    def from_dict(cls, d):
        w = "demand bolus"
        if not isinstance(d, dict):
            raise FieldError("%s: expected a dict with %s" % (w, ", ".join(cls.KEYS)))
        no_extra(d, cls.KEYS, w)
        dose = int_field(d, "dose_ng", 1, ABS_MAX_BOLUS, w, DOSE)
        dur = int_field(d, "duration_s", MIN_BOLUS_S, _MAX_DEMAND_S, w, DURATION)
        lock = int_field(d, "lockout_s", dur, MAX_DEMAND_LOCKOUT_S, w, DURATION)
        n = int_field(d, "max_24h", 1, MAX_DEMAND_24H, w)
        return cls(dose, dur, lock, n)

    def to_dict(self):
        return {"dose_ng": self.dose_ng, "duration_s": self.duration_s,
                "lockout_s": self.lockout_s, "max_24h": self.max_24h}

    def rate(self, conc):
        """Overlay rate of one demand bolus (nL/h, rounded up: for limit checks)."""
        v = units.dose_to_volume(self.dose_ng, conc)
        return -(-v * S_PER_H // self.duration_s)


# ---- programs ---------------------------------------------------------------------------

class Program:
    """A basal program. Build with Program.from_dict (validates every field) or
    Program.stopped(). Attributes: mode, conc (ng/mL, 0 when stopped), basis ('dose':
    values ng/day | 'rate': nL/h), steps [(time of day s, value)] sorted (continuous: one
    step at 0), ramp (start, step, every_s, target) in ng/day for titration, demand
    (Demand or None), start_s (wall s when it took effect, or None before confirm)."""

    def __init__(self, mode, conc=0, basis="dose", steps=None, ramp=None, demand=None,
                 start_s=None):
        self.mode = mode
        self.conc = conc
        self.basis = basis
        self.steps = steps or []
        self.ramp = ramp or _FLAT  # type: Tuple[int, int, int, int]
        self.demand = demand
        self.start_s = start_s
        self._flows = [self._flow(v) for _, v in self.steps]

    @classmethod
    def stopped(cls):
        return cls(STOPPED_MODE)

    def _flow(self, v):
        if self.basis == "rate":
            return v
        return units.dose_rate_to_flow(v, self.conc)

    # -- dicts --
    @classmethod
    def from_dict(cls, d):
        """Validated Program from its dict form (docs/therapy.md); FieldError otherwise."""
        if not isinstance(d, dict):
            raise FieldError("program: expected a dict with a 'mode' field, got %r" % (d,))
        mode = d.get("mode")
        if mode not in MODES:
            raise FieldError("program: mode %r is not one of %s" % (mode, ", ".join(MODES)))
        w = mode + " program"
        if mode == STOPPED_MODE:
            no_extra(d, ("mode",), w)
            return cls.stopped()
        start_s = opt_int_field(d, "start_s", 0, None, w)
        demand = None
        if d.get("demand") is not None:
            demand = Demand.from_dict(d["demand"])
        if "conc_ng_ml" not in d:
            raise FieldError("%s: missing field 'conc_ng_ml' (drug concentration, ng/mL)" % w)
        conc = check_conc(d["conc_ng_ml"], w)
        if mode == CONTINUOUS:
            no_extra(d, ("mode", "conc_ng_ml", "dose_ng_day", "rate_nl_h", "demand", "start_s"), w)
            if ("dose_ng_day" in d) == ("rate_nl_h" in d):
                raise FieldError("%s: give exactly one of 'dose_ng_day' or 'rate_nl_h'" % w)
            if "dose_ng_day" in d:
                v = int_field(d, "dose_ng_day", 0, ABS_MAX_DAILY_DOSE, w, DOSE_RATE)
                return cls(mode, conc, "dose", [(0, v)], None, demand, start_s)
            v = int_field(d, "rate_nl_h", 0, _MAX_FLOW, w, FLOW)
            return cls(mode, conc, "rate", [(0, v)], None, demand, start_s)
        if mode == FLEX:
            no_extra(d, ("mode", "conc_ng_ml", "dose_steps", "rate_steps", "demand", "start_s"), w)
            if ("dose_steps" in d) == ("rate_steps" in d):
                raise FieldError("%s: give exactly one of 'dose_steps' or 'rate_steps'" % w)
            basis = "dose" if "dose_steps" in d else "rate"
            key = basis + "_steps"
            steps = _flex_steps(d[key], key, basis, w)
            return cls(mode, conc, basis, steps, None, demand, start_s)
        # titration
        no_extra(d, ("mode", "conc_ng_ml", "start_ng_day", "step_ng_day", "every_s",
                     "target_ng_day", "demand", "start_s"), w)
        a = int_field(d, "start_ng_day", 0, ABS_MAX_DAILY_DOSE, w, DOSE_RATE)
        b = int_field(d, "target_ng_day", 0, ABS_MAX_DAILY_DOSE, w, DOSE_RATE)
        step = int_field(d, "step_ng_day", 1, ABS_MAX_DAILY_DOSE, w, DOSE_RATE)
        every = int_field(d, "every_s", MIN_TITRATION_EVERY_S, MAX_TITRATION_EVERY_S, w, DURATION)
        n = -(-abs(b - a) // step)
        if n > MAX_TITRATION_STEPS:
            raise FieldError("%s: %d steps from start to target; allowed 0-%d; use a larger "
                             "step_ng_day" % (w, n, MAX_TITRATION_STEPS))
        return cls(mode, conc, "dose", [], (a, step, every, b), demand, start_s)

    def to_dict(self):
        """The dict form (round-trips through from_dict)."""
        if self.mode == STOPPED_MODE:
            return {"mode": STOPPED_MODE}
        d = {"mode": self.mode, "conc_ng_ml": self.conc}
        if self.mode == CONTINUOUS:
            d["dose_ng_day" if self.basis == "dose" else "rate_nl_h"] = self.steps[0][1]
        elif self.mode == FLEX:
            d[self.basis + "_steps"] = [[t, v] for t, v in self.steps]
        else:
            a, step, every, b = self.ramp
            d["start_ng_day"] = a
            d["step_ng_day"] = step
            d["every_s"] = every
            d["target_ng_day"] = b
        if self.demand is not None:
            d["demand"] = self.demand.to_dict()
        if self.start_s is not None:
            d["start_s"] = self.start_s
        return d

    def started(self, now):
        """A copy that took effect at `now` (keeps an existing start_s)."""
        p = Program.from_dict(self.to_dict())
        if p.start_s is None:
            p.start_s = now
        return p

    def __eq__(self, other):
        return isinstance(other, Program) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "Program(%r)" % (self.to_dict(),)

    # -- dose queries used by limits --
    def _ramp_steps(self):
        a, step, _every, b = self.ramp
        return -(-abs(b - a) // step)

    def dose_rate_at(self, t):
        """Titration dose rate (ng/day) at t."""
        a, step, every, b = self.ramp
        k = 0
        if self.start_s is not None and t >= self.start_s:
            k = (t - self.start_s) // every
        if b >= a:
            return min(b, a + k * step)
        return max(b, a - k * step)

    def peak_rate(self):
        """Highest basal rate the program ever sets (nL/h)."""
        if self.mode == STOPPED_MODE:
            return 0
        if self.mode == TITRATION:
            return units.dose_rate_to_flow(max(self.ramp[0], self.ramp[3]), self.conc)
        return max(self._flows)

    def daily_dose(self):
        """Largest dose in any 24 h (ng/day): continuous its dose, flex the day's integral,
        titration max(start, target). Volumetric programs convert rounding up."""
        if self.mode == STOPPED_MODE:
            return 0
        if self.mode == TITRATION:
            return max(self.ramp[0], self.ramp[3])
        acc = 0
        for i in range(len(self.steps)):
            acc += self.steps[i][1] * self._dur(i)
        if self.basis == "dose":
            return -(-acc // S_PER_DAY)
        return units.volume_to_dose(-(-acc // S_PER_H), self.conc, up=True)

    def _dur(self, i):
        # seconds of the day step i covers (the last one wraps to the first)
        n = len(self.steps)
        if n == 1:
            return S_PER_DAY
        nxt = self.steps[i + 1][0] if i + 1 < n else self.steps[0][0] + S_PER_DAY
        return nxt - self.steps[i][0]


def _flex_steps(raw, key, basis, w):
    if not isinstance(raw, (list, tuple)) or not raw:
        raise FieldError("%s: %r must be a list of 1-%d [time_of_day_s, value] pairs"
                         % (w, key, MAX_FLEX_STEPS))
    if len(raw) > MAX_FLEX_STEPS:
        raise FieldError("%s: %d steps; a flex schedule has 1-%d steps; merge some steps"
                         % (w, len(raw), MAX_FLEX_STEPS))
    kind, hi = (DOSE_RATE, ABS_MAX_DAILY_DOSE) if basis == "dose" else (FLOW, _MAX_FLOW)
    out = []
    prev = -1
    for i in range(len(raw)):
        s = raw[i]
        if not isinstance(s, (list, tuple)) or len(s) != 2:
            raise FieldError("%s: step %d must be [time_of_day_s, value], got %r" % (w, i + 1, s))
        sw = "%s step %d" % (w, i + 1)
        t = int_field({"time_of_day_s": s[0]}, "time_of_day_s", 0, S_PER_DAY - 1, sw, DURATION)
        vk = "dose_ng_day" if basis == "dose" else "rate_nl_h"
        v = int_field({vk: s[1]}, vk, 0, hi, sw, kind)
        if t <= prev:
            raise FieldError("%s: starts at %s, not after the previous step (%s); list steps in "
                             "time order, each start once" % (sw, units.format_time_of_day(t),
                                                               units.format_time_of_day(prev)))
        prev = t
        out.append((t, v))
    return out


def rate_at(program, t):
    """Basal rate (nL/h) the program sets at wall time t."""
    m = program.mode
    if m == STOPPED_MODE:
        return 0
    if m == CONTINUOUS:
        return program._flows[0]
    if m == FLEX:
        tod = t % S_PER_DAY
        steps = program.steps
        i = len(steps) - 1  # before the first start: the last step (wraps past midnight)
        for j in range(len(steps)):
            if steps[j][0] <= tod:
                i = j
            else:
                break
        return program._flows[i]
    return units.dose_rate_to_flow(program.dose_rate_at(t), program.conc)


def next_change(program, t):
    """The first time after t at which the basal rate changes, or None if it never does.
    (Titration: the next ramp step, even where rounding leaves the nL/h unchanged.)"""
    m = program.mode
    if m == FLEX:
        cur = rate_at(program, t)
        day0 = t - t % S_PER_DAY
        for day in (day0, day0 + S_PER_DAY):
            for i in range(len(program.steps)):
                b = day + program.steps[i][0]
                if b > t and program._flows[i] != cur:
                    return b
        return None
    if m == TITRATION:
        a, step, every, b = program.ramp
        if program.start_s is None:
            return None
        k = 0 if t < program.start_s else (t - program.start_s) // every
        if k >= program._ramp_steps():
            return None
        return program.start_s + (k + 1) * every
    return None


def _flex_day_acc(program):
    acc = 0
    for i in range(len(program.steps)):
        acc += program._flows[i] * program._dur(i)
    return acc  # nL * s / h over one day


def _acc_between(program, t0, t1):
    # integral of the rate over [t0, t1) in nL*s/h, exact, per segment
    if t1 <= t0 or program.mode == STOPPED_MODE:
        return 0
    acc = 0
    if program.mode == FLEX:
        days = (t1 - t0) // S_PER_DAY
        acc = days * _flex_day_acc(program)
        t1 = t0 + (t1 - t0) % S_PER_DAY
    t = t0
    while t < t1:
        n = next_change(program, t)
        e = t1 if n is None or n > t1 else n
        acc += rate_at(program, t) * (e - t)
        t = e
    return acc


def volume_between(program, t0, t1):
    """Volume (nL, rounded down) the basal program delivers over [t0, t1): integrated per
    segment (whole days at once for flex), so 90 days costs a few hundred steps."""
    return _acc_between(program, t0, t1) // S_PER_H


def time_to_deliver(program, t0, volume_nl, horizon_s=400 * S_PER_DAY):
    """The earliest t >= t0 by which the basal program has delivered volume_nl (e.g. the
    reservoir: time to empty, with scheduled steps), or None if not within horizon_s."""
    target = volume_nl * S_PER_H
    if target <= 0:
        return t0
    if program.mode == STOPPED_MODE:
        return None
    end = t0 + horizon_s
    acc = 0
    t = t0
    if program.mode == FLEX:
        day = _flex_day_acc(program)
        if day <= 0:
            return None
        full = target // day
        if full >= 2:
            t += (full - 1) * S_PER_DAY
            acc = (full - 1) * day
    while t < end:
        n = next_change(program, t)
        e = end if n is None or n > end else n
        r = rate_at(program, t)
        if r > 0 and acc + r * (e - t) >= target:
            t += -(-(target - acc) // r)
            return t if t <= end else None
        acc += r * (e - t)
        t = e
    return None


def daily_dose(program):
    """Largest dose in any 24 h (ng), for limit checks (Program.daily_dose)."""
    return program.daily_dose()


def daily_volume(program, t):
    """Volume (nL) delivered over the 24 h from t."""
    return volume_between(program, t, t + S_PER_DAY)


# ---- boluses -----------------------------------------------------------------------------

BOLUS_KINDS = ("clinician", "demand", "prime", "bridge")


class Bolus:
    """A bolus overlay: volume_nl delivered evenly over [start_s, start_s + duration_s).
    with_basal True: added on top of the basal (clinician, demand); False: the basal
    pauses while it runs (prime, bridge). dose_ng is the drug it carries (conc ng/mL).
    start_s is None until it is given (staging sets it at confirm)."""

    KEYS = ("kind", "start_s", "duration_s", "volume_nl", "dose_ng", "conc_ng_ml", "with_basal")

    def __init__(self, kind, duration_s, volume_nl, dose_ng, conc, with_basal, start_s=None):
        self.kind = kind
        self.duration_s = duration_s
        self.volume_nl = volume_nl
        self.dose_ng = dose_ng
        self.conc = conc
        self.with_basal = with_basal
        self.start_s = start_s

    @property
    def end_s(self):
        return None if self.start_s is None else self.start_s + self.duration_s

    def rate_nl_h(self, up=False):
        """Overlay rate volume/duration in nL/h, rounded down (or up for limit checks)."""
        a = self.volume_nl * S_PER_H
        return -(-a // self.duration_s) if up else a // self.duration_s

    def rate_at(self, t):
        """Overlay rate at t (nL/h, rounded down); 0 outside the bolus."""
        if self.start_s is None or t < self.start_s or t >= self.start_s + self.duration_s:
            return 0
        return self.rate_nl_h()

    def delivered_by(self, t):
        """Volume (nL, rounded down) the bolus has delivered by t if on time."""
        if self.start_s is None or t <= self.start_s:
            return 0
        el = min(t - self.start_s, self.duration_s)
        return self.volume_nl * el // self.duration_s

    def steps(self, cal_pl):
        """Whole microsteps for the volume (rounded down: less delivered)."""
        return units.volume_to_steps(self.volume_nl, cal_pl)

    def interval(self, cal_pl):
        """Step interval spreading steps(cal_pl) over the duration: (whole_us, frac16)."""
        return units.span_interval(self.steps(cal_pl), self.duration_s)

    def started(self, now):
        b = Bolus.from_dict(self.to_dict())
        if b.start_s is None:
            b.start_s = now
        return b

    def to_dict(self):
        d = {"kind": self.kind, "duration_s": self.duration_s, "volume_nl": self.volume_nl,
             "dose_ng": self.dose_ng, "conc_ng_ml": self.conc, "with_basal": self.with_basal}
        if self.start_s is not None:
            d["start_s"] = self.start_s
        return d

    @classmethod
    def from_dict(cls, d):
        """Validated Bolus from its stored dict (all KEYS but start_s required)."""
        w = "bolus"
        if not isinstance(d, dict):
            raise FieldError("bolus: expected a dict with %s" % ", ".join(cls.KEYS))
        no_extra(d, cls.KEYS, w)
        kind = d.get("kind")
        if kind not in BOLUS_KINDS:
            raise FieldError("bolus: kind %r is not one of %s" % (kind, ", ".join(BOLUS_KINDS)))
        w = kind + " bolus"
        lo = 1 if kind in ("prime", "bridge") else MIN_BOLUS_S
        hi = _MAX_BRIDGE_S if kind == "bridge" else MAX_BOLUS_S
        dur = int_field(d, "duration_s", lo, hi, w, DURATION)
        vol = int_field(d, "volume_nl", 0, _MAX_FLOW, w, VOLUME)
        dose = int_field(d, "dose_ng", 0, _MAX_FLOW, w, DOSE)
        conc = int_field(d, "conc_ng_ml", 0, None, w)
        wb = d.get("with_basal")
        if wb not in (True, False):
            raise FieldError("%s: field 'with_basal' must be true or false" % w)
        st = opt_int_field(d, "start_s", 0, None, w)
        return cls(kind, dur, vol, dose, conc, wb, st)

    def __eq__(self, other):
        return isinstance(other, Bolus) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "Bolus(%r)" % (self.to_dict(),)


def clinician_bolus(conc, duration_s, dose_ng=None, volume_nl=None, start_s=None):
    """A clinician (e.g. screening) bolus: a dose (ng) or a volume (nL) of drug at conc,
    over duration_s >= 60 s (DOMAIN: >= 1 min), on top of the basal. Volume from a dose
    rounds down (less delivered); a volume's dose rounds up (for the limit check)."""
    w = "clinician bolus"
    check_conc(conc, w)
    if (dose_ng is None) == (volume_nl is None):
        raise FieldError("%s: give exactly one of a dose or a volume" % w)
    int_field({"duration_s": duration_s}, "duration_s", MIN_BOLUS_S, MAX_BOLUS_S, w, DURATION)
    if dose_ng is not None:
        int_field({"dose_ng": dose_ng}, "dose_ng", 1, ABS_MAX_BOLUS, w, DOSE)
        volume_nl = units.dose_to_volume(dose_ng, conc)
    else:
        int_field({"volume_nl": volume_nl}, "volume_nl", 1, _MAX_FLOW, w, VOLUME)
        dose_ng = units.volume_to_dose(volume_nl, conc, up=True)
    return Bolus("clinician", duration_s, volume_nl, dose_ng, conc, True, start_s)


def prime_bolus(volume_nl, duration_s, conc=0, start_s=None):
    """A priming bolus: fills catheter/line dead volume (nL) over duration_s with the basal
    paused. No dose check (the drug only reaches the catheter tip); capped by max_prime."""
    w = "priming bolus"
    int_field({"volume_nl": volume_nl}, "volume_nl", 1, ABS_MAX_PRIME, w, VOLUME)
    int_field({"duration_s": duration_s}, "duration_s", 1, MAX_BOLUS_S, w, DURATION)
    dose = units.volume_to_dose(volume_nl, conc, up=True) if conc else 0
    return Bolus("prime", duration_s, volume_nl, dose, conc, False, start_s)


def bridge_bolus(old, new, dead_volume_nl, now):
    """The bridge after a concentration change, or None when none is needed.

    Rule: the pump/catheter dead volume still holds OLD-concentration drug. It is pushed
    out exactly as the OLD program would have delivered it: the old program keeps its
    pace until dead_volume_nl has flowed (time_to_deliver), so the patient gets the old
    dose rate of the old drug, never the new rate of the old drug (which would under- or
    overdose by the concentration ratio). The Bolus has with_basal False (the new
    program waits) and lasts until then; the controller starts the new program
    (titration: start_s) at its end. None when concentrations are equal, the dead volume
    is 0, or the old program delivers nothing (stopped): nothing old is flowing, and the
    new program starts at once. FieldError if the old program needs more than 30 days."""
    if old.mode == STOPPED_MODE or dead_volume_nl <= 0 or old.conc == new.conc:
        return None
    end = time_to_deliver(old, now, dead_volume_nl, _MAX_BRIDGE_S)
    if end is None:
        if volume_between(old, now, now + S_PER_DAY) == 0:
            return None
        raise FieldError("bridge bolus: the old program needs more than %d days to push %s of "
                         "dead volume; prime instead" % (_MAX_BRIDGE_S // S_PER_DAY,
                                                         units.format_quantity(VOLUME, dead_volume_nl)))
    dose = units.volume_to_dose(dead_volume_nl, old.conc, up=True)
    return Bolus("bridge", max(1, end - now), dead_volume_nl, dose, old.conc, False, now)


def demand_bolus(program, now):
    """The Bolus for one patient demand under `program` (check BolusLedger.may_give first)."""
    dm = program.demand
    if dm is None:
        raise FieldError("demand bolus: the program has no demand-bolus settings")
    vol = units.dose_to_volume(dm.dose_ng, program.conc)
    return Bolus("demand", dm.duration_s, vol, dm.dose_ng, program.conc, True, now)


class DemandRefused(ValueError):
    """A demand bolus is not allowed now; the message says why and when it will be."""


class BolusLedger:
    """Start times of recent demand boluses in a fixed list of MAX_DEMAND_24H slots (the
    most a program may allow in 24 h), enough to answer lockout and rolling-24 h-count
    questions. Persist it with to_list/from_list so a reset does not clear a lockout.
    A timestamp later than `now` (clock set back) counts as `now`: conservative."""

    def __init__(self, size=MAX_DEMAND_24H):
        self._t = [-1] * size  # -1 = empty slot

    def record(self, t):
        """Note a demand bolus that started at t (replaces the oldest slot)."""
        i = 0
        for j in range(1, len(self._t)):
            if self._t[j] < self._t[i]:
                i = j
        self._t[i] = t

    def _ages(self, now):
        out = []
        for t in self._t:
            if t >= 0:
                out.append(max(0, now - t))
        return out

    def count_24h(self, now):
        """Demand boluses started in the 24 h before now."""
        n = 0
        for a in self._ages(now):
            if a < S_PER_DAY:
                n += 1
        return n

    def next_allowed(self, demand, now):
        """Earliest time (>= now) at which lockout and the 24 h count allow a bolus."""
        ages = self._ages(now)
        t = now
        if ages:
            young = min(ages)
            if young < demand.lockout_s:
                t = max(t, now + demand.lockout_s - young)
        recent = sorted(a for a in ages if a < S_PER_DAY)  # youngest first
        if len(recent) >= demand.max_24h:
            # the (max_24h)-th youngest must leave the window
            t = max(t, now + S_PER_DAY - recent[demand.max_24h - 1])
        return t

    def may_give(self, demand, now, blocked_reason=None):
        """(True, None) if a demand bolus may start now, else (False, reason).
        blocked_reason: the caller's reason that no bolus may run (high-priority alarm,
        self-test, another bolus running, state); it wins over everything."""
        if blocked_reason:
            return False, blocked_reason
        if demand is None:
            return False, "demand boluses are not enabled in the program"
        ages = self._ages(now)
        if ages and min(ages) < demand.lockout_s:
            wait = demand.lockout_s - min(ages)
            return False, ("lockout: next demand bolus allowed in %s (lockout %s)"
                           % (_wait_text(wait), units.format_duration(demand.lockout_s)))
        if self.count_24h(now) >= demand.max_24h:
            wait = self.next_allowed(demand, now) - now
            return False, ("24 h maximum of %d demand boluses reached; next allowed in %s"
                           % (demand.max_24h, _wait_text(wait)))
        return True, None

    def give(self, program, now, blocked_reason=None):
        """Check, record and return the demand Bolus, or raise DemandRefused (nothing recorded)."""
        ok, why = self.may_give(program.demand, now, blocked_reason)
        if not ok:
            raise DemandRefused(why)
        b = demand_bolus(program, now)
        self.record(now)
        return b

    def to_list(self):
        return [t for t in self._t if t >= 0]

    @classmethod
    def from_list(cls, times, size=MAX_DEMAND_24H):
        led = cls(size)
        for t in times:
            led.record(t)
        return led


def _wait_text(s):
    m = -(-s // 60)
    if m < 60:
        return "%d min" % m
    return "%d h %02d min" % (m // 60, m % 60)
