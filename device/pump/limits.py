"""Hard limits, stored apart from the program, and the field checks every program obeys.

A hard limit caps what any program or bolus may do; it changes only through its own
confirmed change (pump.staging kind "limits"). Each limit may itself take only an
absolute range (LIMIT_FIELDS); the top of max_rate is the motor's maximum flow,
which the board supplies (units.motor_max_flow).

Errors:
- FieldError(ValueError): a field is missing, of the wrong type or outside the range
  any program may use (schedule times, counts, ...).
- LimitError(ValueError): a value is valid in itself but exceeds a hard limit. The
  controller raises the dose-limit alarm on it. Its message names the limit, the
  offending value and the allowed range in user units, and what to do.
Checks only read; a rejected program or bolus changes nothing.
"""
from micropython import const

from pump.units import DOSE, DOSE_RATE, VOLUME, FLOW, CONC, DURATION, format_quantity

try:
    from typing import Optional  # noqa: F401
except ImportError:
    pass

MIN_BOLUS_S = const(60)  # DOMAIN: screening bolus over >= 1 min
MAX_BOLUS_S = const(86400)
MAX_FLEX_STEPS = const(10)
MAX_DEMAND_24H = const(24)  # also the size of the demand-bolus timestamp list
MIN_TITRATION_EVERY_S = const(3600)
MAX_TITRATION_EVERY_S = const(604800)  # 7 days
MAX_TITRATION_STEPS = const(1000)
MIN_CONC = const(1000)  # 1 mcg/mL
MAX_CONC = const(50_000_000)  # 50 mg/mL
ABS_MAX_DAILY_DOSE = const(2_000_000)  # 2000 mcg/day: ceiling for the max_daily_dose limit
ABS_MAX_BOLUS = const(500_000)  # 500 mcg
ABS_MAX_PRIME = const(5_000_000)  # 5 mL
MAX_DEMAND_LOCKOUT_S = const(86400)

# (name, dict key, kind, default, absolute low, absolute high; None = the motor's max flow)
LIMIT_FIELDS = (
    ("max_rate", "max_rate_nl_h", FLOW, 100_000, 0, None),
    ("max_daily_dose", "max_daily_dose_ng_day", DOSE_RATE, 1_000_000, 0, ABS_MAX_DAILY_DOSE),
    ("max_bolus", "max_bolus_ng", DOSE, 100_000, 0, ABS_MAX_BOLUS),
    ("min_lockout", "min_lockout_s", DURATION, 3600, MIN_BOLUS_S, MAX_DEMAND_LOCKOUT_S),
    ("max_boluses_24h", "max_boluses_24h", None, 4, 0, MAX_DEMAND_24H),
    ("max_prime", "max_prime_nl", VOLUME, 500_000, 0, ABS_MAX_PRIME),
)


class FieldError(ValueError):
    """A field is malformed or outside the range any program may use."""


class LimitError(ValueError):
    """A value exceeds a hard limit. Attributes: limit (name), value, lo, hi."""

    def __init__(self, msg, limit=None, value=None, lo=None, hi=None):
        super().__init__(msg)
        self.limit = limit
        self.value = value
        self.lo = lo
        self.hi = hi


def show(kind, v):
    """A value in user units for messages (plain number when kind is None)."""
    if kind is None:
        return "%d" % v
    return format_quantity(kind, v)


def _range_text(kind, lo, hi):
    if hi is None:
        return "%s or more" % show(kind, lo)
    if kind is None:
        return "%d-%d" % (lo, hi)
    a = show(kind, lo)
    b = show(kind, hi)
    # "0-1000 mcg/day" rather than "0 mcg/day-1000 mcg/day" when the units agree
    ua = a.split(" ", 1)
    ub = b.split(" ", 1)
    if len(ua) == 2 and len(ub) == 2 and ua[1] == ub[1]:
        return "%s-%s %s" % (ua[0], ub[0], ua[1])
    return "%s-%s" % (a, b)


def int_field(d, key, lo, hi, what, kind=None):
    """d[key] as an int within lo..hi (hi None: no top), or FieldError naming the field
    and its range."""
    if key not in d:
        raise FieldError("%s: missing field %r (allowed %s)" % (what, key, _range_text(kind, lo, hi)))
    v = d[key]
    if not isinstance(v, int) or isinstance(v, bool):
        raise FieldError("%s: field %r must be an integer in internal units (allowed %s), got %r"
                         % (what, key, _range_text(kind, lo, hi), v))
    if v < lo or (hi is not None and v > hi):
        raise FieldError("%s: %s %s is outside the allowed range %s; enter a value in range"
                         % (what, key, show(kind, v), _range_text(kind, lo, hi)))
    return v


def opt_int_field(d, key, lo, hi, what, kind=None):
    """int_field, or None when the key is absent."""
    if key not in d:
        return None
    return int_field(d, key, lo, hi, what, kind)


def no_extra(d, keys, what):
    """FieldError on any key not in `keys` (unknown options are errors, not ignored)."""
    for k in d:
        if k not in keys:
            raise FieldError("%s: unknown field %r; allowed fields: %s" % (what, k, ", ".join(keys)))


def over_limit(what, kind, value, limit_name, limit_value, hint):
    """The LimitError for `value` above the limit `limit_name` (allowed 0..limit)."""
    return LimitError("%s %s exceeds the hard limit %s %s (allowed %s); %s"
                      % (what, show(kind, value), limit_name, show(kind, limit_value),
                         _range_text(kind, 0, limit_value), hint),
                      limit_name, value, 0, limit_value)


_RAISE = "lower it or raise the limit with a confirmed limits change"


class HardLimits:
    """The hard limits. Attributes by LIMIT_FIELDS name: max_rate (nL/h), max_daily_dose
    (ng/day), max_bolus (ng), min_lockout (s), max_boluses_24h, max_prime (nL)."""

    def __init__(self, max_rate=100_000, max_daily_dose=1_000_000, max_bolus=100_000,
                 min_lockout=3600, max_boluses_24h=4, max_prime=500_000):
        self.max_rate = max_rate
        self.max_daily_dose = max_daily_dose
        self.max_bolus = max_bolus
        self.min_lockout = min_lockout
        self.max_boluses_24h = max_boluses_24h
        self.max_prime = max_prime

    def to_dict(self):
        """Plain dict for storage/protocol, keys with unit suffixes (LIMIT_FIELDS)."""
        d = {}
        for name, key, _k, _d, _lo, _hi in LIMIT_FIELDS:
            d[key] = getattr(self, name)
        return d

    @classmethod
    def from_dict(cls, d, motor_max_nl_h):
        """Validated HardLimits from a dict (every key required, no others)."""
        if not isinstance(d, dict):
            raise FieldError("limits: expected a dict, got %r" % (d,))
        keys = [f[1] for f in LIMIT_FIELDS]
        no_extra(d, keys, "limits")
        lim = cls()
        for name, key, kind, _d, lo, hi in LIMIT_FIELDS:
            setattr(lim, name, int_field(d, key, lo, motor_max_nl_h if hi is None else hi,
                                         "limits", kind))
        return lim

    def validate(self, motor_max_nl_h):
        """FieldError if any limit is outside its absolute range (see LIMIT_FIELDS)."""
        HardLimits.from_dict(self.to_dict(), motor_max_nl_h)
        return self

    def copy(self):
        c = HardLimits()
        for f in LIMIT_FIELDS:
            setattr(c, f[0], getattr(self, f[0]))
        return c

    def __eq__(self, other):
        return isinstance(other, HardLimits) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "HardLimits(%r)" % (self.to_dict(),)


def check_program(program, limits, motor_max_nl_h):
    """LimitError unless `program` (a therapy.Program, already field-valid) stays within
    `limits` and the motor: peak basal rate <= max_rate; daily dose (its worst 24 h,
    volumetric programs converted rounding up) <= max_daily_dose; demand settings within
    max_bolus, min_lockout, max_boluses_24h; worst-case day (basal + every allowed demand
    bolus) <= max_daily_dose; basal + demand bolus rate <= the motor's max flow."""
    peak = program.peak_rate()
    if peak > motor_max_nl_h:
        raise over_limit("basal rate", FLOW, peak, "motor_max", motor_max_nl_h,
                         "lower the rate or use a higher concentration")
    if peak > limits.max_rate:
        raise over_limit("basal rate", FLOW, peak, "max_rate", limits.max_rate,
                         "lower the rate or raise the limit with a confirmed limits change")
    daily = program.daily_dose()
    if daily > limits.max_daily_dose:
        raise over_limit("daily dose", DOSE_RATE, daily, "max_daily_dose", limits.max_daily_dose,
                         "lower the dose or raise the limit with a confirmed limits change")
    dm = program.demand
    if dm is not None:
        if dm.dose_ng > limits.max_bolus:
            raise over_limit("demand bolus dose", DOSE, dm.dose_ng, "max_bolus", limits.max_bolus,
                             _RAISE)
        if dm.max_24h > limits.max_boluses_24h:
            raise over_limit("demand boluses per 24 h", None, dm.max_24h, "max_boluses_24h",
                             limits.max_boluses_24h, _RAISE)
        if dm.lockout_s < limits.min_lockout:
            raise LimitError("demand lockout %s is below the hard limit min_lockout %s (allowed %s); "
                             "lengthen the lockout or lower the limit with a confirmed limits change"
                             % (show(DURATION, dm.lockout_s), show(DURATION, limits.min_lockout),
                                _range_text(DURATION, limits.min_lockout, MAX_DEMAND_LOCKOUT_S)),
                             "min_lockout", dm.lockout_s, limits.min_lockout, MAX_DEMAND_LOCKOUT_S)
        worst = daily + dm.max_24h * dm.dose_ng
        if worst > limits.max_daily_dose:
            raise over_limit("worst-case daily dose (basal %s + %d demand boluses x %s)"
                             % (show(DOSE_RATE, daily), dm.max_24h, show(DOSE, dm.dose_ng)),
                             DOSE_RATE, worst, "max_daily_dose", limits.max_daily_dose,
                             "lower the basal dose, the demand dose or count, or raise the limit")
        brate = dm.rate(program.conc)
        if peak + brate > motor_max_nl_h:
            raise over_limit("basal + demand bolus rate", FLOW, peak + brate, "motor_max",
                             motor_max_nl_h, "lengthen the demand bolus duration")
    return program


def check_bolus(bolus, limits, motor_max_nl_h, basal_nl_h=0, dose_24h_ng=None):
    """LimitError unless a therapy.Bolus is within limits: dose boluses (clinician, demand)
    <= max_bolus and, when dose_24h_ng (dose delivered in the last 24 h) is given,
    dose_24h_ng + bolus <= max_daily_dose; prime and bridge volumes <= max_prime (no dose
    check: they fill dead volume); bolus rate (+ basal_nl_h when the bolus runs on top of
    the basal) <= the motor's max flow. Duration rules are checked when the Bolus is built."""
    if bolus.kind in ("prime", "bridge"):
        if bolus.volume_nl > limits.max_prime:
            raise over_limit(bolus.kind + " volume", VOLUME, bolus.volume_nl, "max_prime",
                             limits.max_prime, _RAISE)
    else:
        dose = bolus.dose_ng
        if dose > limits.max_bolus:
            raise over_limit(bolus.kind + " bolus dose", DOSE, dose, "max_bolus", limits.max_bolus,
                             "lower the dose or raise the limit with a confirmed limits change")
        if dose_24h_ng is not None and dose_24h_ng + dose > limits.max_daily_dose:
            raise over_limit("dose in 24 h with this bolus (%s already given)"
                             % show(DOSE, dose_24h_ng), DOSE_RATE, dose_24h_ng + dose,
                             "max_daily_dose", limits.max_daily_dose,
                             "give a smaller bolus later or raise the limit")
    r = bolus.rate_nl_h(up=True) + (basal_nl_h if bolus.with_basal else 0)
    if r > motor_max_nl_h:
        raise over_limit(bolus.kind + " bolus rate", FLOW, r, "motor_max", motor_max_nl_h,
                         "lengthen the bolus duration")
    return bolus


def check_conc(conc, what="program"):
    """FieldError unless conc (ng/mL) is within MIN_CONC..MAX_CONC."""
    return int_field({"conc_ng_ml": conc}, "conc_ng_ml", MIN_CONC, MAX_CONC, what, CONC)


def range_text(kind, lo, hi):
    """'0-1000 mcg/day': a range in user units."""
    return _range_text(kind, lo, hi)

