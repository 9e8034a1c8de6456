"""Units: the one place that owns internal units, conversions, parsing and formatting.

Used unchanged by the device, the host CLI (CPython) and the docs generator.
Everything is integer arithmetic; decimals are parsed by splitting on '.', never
through float, so results are exact and identical on CPython and MicroPython.

Internal units (kind -> unit):
  dose        ng        (1 mcg = 1000 ng)
  dose_rate   ng/day
  volume      nL        (1 uL = 1000 nL, 1 mL = 1_000_000 nL)
  flow        nL/h
  conc        ng/mL     (500 mcg/mL = 500_000 ng/mL)
  cal         pL/step   (pL per motor microstep; 0.02 uL = 20_000 pL)
  duration    s
  wall time: integer seconds since 2000-01-01 (the MicroPython epoch); uptime ms.

Rounding (every rule is stated at the function too):
- Conversions that decide what the motor delivers (dose -> volume, dose rate ->
  flow, volume -> steps) round DOWN: toward less delivered, by less than one
  internal unit (1 nL, 1 nL/h, 1 step).
- Conversions used to check a limit pass up=True and round UP, so a limit is never
  passed by rounding.
- step_interval() and bolus intervals round to the nearest 1/65536 us (ties
  toward the longer interval): the error is below 1e-11 of the interval.
- Formatting rounds to nearest (ties away from zero) at the shown decimals.
"""
from micropython import const

from pump.dose import interval_for  # the one rounding rule for step intervals

try:
    from typing import Optional, Tuple  # noqa: F401
except ImportError:
    pass

NG_PER_MCG = const(1000)
NG_PER_MG = const(1_000_000)
NL_PER_UL = const(1000)
NL_PER_ML = const(1_000_000)
PL_PER_NL = const(1000)
S_PER_MIN = const(60)
S_PER_H = const(3600)
S_PER_DAY = const(86400)
H_PER_DAY = const(24)
US_PER_H = const(3_600_000_000)
FRAC_ONE = const(65536)  # step interval fraction unit: 1/65536 us (as pump.dose)

DOSE = "dose"
DOSE_RATE = "dose_rate"
VOLUME = "volume"
FLOW = "flow"
CONC = "conc"
CAL = "cal"
DURATION = "duration"

# (symbol, kind, num, den, min_places, max_places):
#   internal = user_value * num / den;  formatted with max_places decimals,
#   trailing zeros dropped down to min_places.  den != 1 only where the unit is
#   not a whole number of internal units (mL/day, uL/day in nL/h).
UNITS = (
    ("ng", DOSE, 1, 1, 0, 0),
    ("mcg", DOSE, 1000, 1, 0, 3),
    ("mg", DOSE, 1_000_000, 1, 0, 6),
    ("ng/day", DOSE_RATE, 1, 1, 0, 0),
    ("mcg/day", DOSE_RATE, 1000, 1, 0, 3),
    ("mg/day", DOSE_RATE, 1_000_000, 1, 0, 6),
    ("mcg/h", DOSE_RATE, 24_000, 1, 0, 3),
    ("nL", VOLUME, 1, 1, 0, 0),
    ("uL", VOLUME, 1000, 1, 1, 3),
    ("mL", VOLUME, 1_000_000, 1, 3, 6),
    ("nL/h", FLOW, 1, 1, 0, 0),
    ("uL/h", FLOW, 1000, 1, 1, 3),
    ("mL/h", FLOW, 1_000_000, 1, 3, 6),
    ("uL/day", FLOW, 1000, 24, 1, 3),
    ("mL/day", FLOW, 1_000_000, 24, 3, 3),
    ("ng/mL", CONC, 1, 1, 0, 0),
    ("mcg/mL", CONC, 1000, 1, 0, 3),
    ("mg/mL", CONC, 1_000_000, 1, 0, 6),
    ("pL/step", CAL, 1, 1, 0, 0),
    ("nL/step", CAL, 1000, 1, 1, 3),
    ("uL/step", CAL, 1_000_000, 1, 4, 6),
    ("s", DURATION, 1, 1, 0, 0),
    ("min", DURATION, 60, 1, 0, 0),
    ("h", DURATION, 3600, 1, 0, 0),
    ("day", DURATION, 86400, 1, 0, 0),
)

# Accepted spellings of one part of a unit (either side of '/'), after lower-casing
# and mapping the micro signs U+00B5 / U+03BC to 'u'.
ALIASES = (("ug", "mcg"), ("d", "day"), ("days", "day"), ("hr", "h"), ("sec", "s"),
           ("microstep", "step"))

# The unit each kind is shown in unless the caller asks for another.
DEFAULT_UNIT = (
    (DOSE, "mcg"), (DOSE_RATE, "mcg/day"), (VOLUME, "mL"), (FLOW, "uL/h"),
    (CONC, "mcg/mL"), (CAL, "uL/step"), (DURATION, "s"),
)

KIND_NAMES = (
    (DOSE, "dose"), (DOSE_RATE, "dose rate"), (VOLUME, "volume"), (FLOW, "flow rate"),
    (CONC, "concentration"), (CAL, "calibration"), (DURATION, "duration"),
)

INTERNAL_UNIT = (
    (DOSE, "ng"), (DOSE_RATE, "ng/day"), (VOLUME, "nL"), (FLOW, "nL/h"),
    (CONC, "ng/mL"), (CAL, "pL/step"), (DURATION, "s"),
)

_MAX_DIGITS = const(18)


def _pick(table, key):
    for k, v in table:
        if k == key:
            return v
    raise ValueError("unknown quantity kind %r; kinds: %s" % (key, ", ".join(k for k, _ in table)))


def kind_name(kind):
    """Human name of a kind ('dose rate')."""
    return _pick(KIND_NAMES, kind)


def units_of(kind):
    """Unit symbols accepted for one kind, in table order."""
    return [u[0] for u in UNITS if u[1] == kind]


def _div(a, b, up):
    """a / b for a >= 0, b > 0: floor, or ceiling when up."""
    if up:
        return -(-a // b)
    return a // b


def _pos(name, v):
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError("%s must be an integer, got %r" % (name, v))
    if v <= 0:
        raise ValueError("%s must be > 0, got %d" % (name, v))


def _nonneg(name, v):
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError("%s must be an integer, got %r" % (name, v))
    if v < 0:
        raise ValueError("%s must be >= 0, got %d" % (name, v))


# ---- conversions ------------------------------------------------------------------

def dose_rate_to_flow(dose_ng_day, conc_ng_ml, up=False):
    """ng/day at ng/mL -> nL/h. Rounds down (less delivered, < 1 nL/h) unless up."""
    _nonneg("dose rate", dose_ng_day)
    _pos("concentration", conc_ng_ml)
    return _div(dose_ng_day * NL_PER_ML, conc_ng_ml * H_PER_DAY, up)


def flow_to_dose_rate(rate_nl_h, conc_ng_ml, up=False):
    """nL/h at ng/mL -> ng/day. Rounds down unless up (limit checks pass up=True)."""
    _nonneg("flow rate", rate_nl_h)
    _pos("concentration", conc_ng_ml)
    return _div(rate_nl_h * H_PER_DAY * conc_ng_ml, NL_PER_ML, up)


def dose_to_volume(dose_ng, conc_ng_ml, up=False):
    """ng at ng/mL -> nL. Rounds down (less delivered, < 1 nL) unless up."""
    _nonneg("dose", dose_ng)
    _pos("concentration", conc_ng_ml)
    return _div(dose_ng * NL_PER_ML, conc_ng_ml, up)


def volume_to_dose(volume_nl, conc_ng_ml, up=False):
    """nL at ng/mL -> ng. Rounds down unless up (limit checks pass up=True)."""
    _nonneg("volume", volume_nl)
    _pos("concentration", conc_ng_ml)
    return _div(volume_nl * conc_ng_ml, NL_PER_ML, up)


def flow_per_day(rate_nl_h):
    """nL/h -> nL/day (exact). Show it with fmt(v, 'mL/day') for mL/day."""
    return rate_nl_h * H_PER_DAY


def volume_to_steps(volume_nl, cal_pl, up=False):
    """nL -> whole microsteps at cal_pl pL/step. Rounds down (less delivered) unless up."""
    _nonneg("volume", volume_nl)
    _pos("calibration", cal_pl)
    return _div(volume_nl * PL_PER_NL, cal_pl, up)


def steps_to_volume(steps, cal_pl, up=False):
    """Microsteps -> nL. Rounds down unless up. The exact value is steps * cal_pl pL:
    accumulate in pL (or steps) and convert once, never sum rounded nL."""
    _nonneg("steps", steps)
    _pos("calibration", cal_pl)
    return _div(steps * cal_pl, PL_PER_NL, up)


def motor_max_flow(max_steps_per_s, cal_pl):
    """The motor's top speed (microsteps/s, from the board) as nL/h, rounded down.
    Reference pump: 2000 steps/s at 20_000 pL -> 144_000_000 nL/h (144 mL/h)."""
    _pos("max steps/s", max_steps_per_s)
    _pos("calibration", cal_pl)
    return max_steps_per_s * S_PER_H * cal_pl // PL_PER_NL


def step_interval(rate_nl_h, cal_pl):
    """Time between microsteps for a flow: (whole_us, frac16), the interval being
    whole_us + frac16/65536 us, rounded to the nearest 1/65536 us (ties longer).
    None for rate 0. Equals pump.dose.interval_for(rate_nl_h * 1000, 3_600_000_000 * cal_pl):
    25 uL/h at 20_000 pL/step -> 1250 steps/h -> (2_880_000, 0)."""
    _nonneg("flow rate", rate_nl_h)
    _pos("calibration", cal_pl)
    if rate_nl_h == 0:
        return None
    # interval_us = 3600e6 us / (rate * 1000 / cal) = 3_600_000 * cal / rate
    return interval_for(rate_nl_h, 3_600_000 * cal_pl)


def span_interval(steps, duration_s):
    """Interval that spreads `steps` microsteps evenly over duration_s (a bolus):
    same form and rounding as step_interval; None for 0 steps."""
    _nonneg("steps", steps)
    _pos("duration", duration_s)
    if steps == 0:
        return None
    return interval_for(steps, duration_s * 1_000_000)


# ---- parsing ----------------------------------------------------------------------

def _entry(symbol):
    for u in UNITS:
        if u[0] == symbol:
            return u
    raise ValueError("unknown unit %r; accepted units: %s" % (symbol, ", ".join(u[0] for u in UNITS)))


def _normalise_unit(text):
    s = text.strip().replace("\u00b5", "u").replace("\u03bc", "u").lower().replace(" ", "")
    parts = s.split("/")
    out = []
    for p in parts:
        for a, b in ALIASES:
            if p == a:
                p = b
                break
        out.append(p)
    return "/".join(out)


def find_unit(text):
    """The table entry for a unit as a user may write it ('µL', 'ug/d', 'mL/day')."""
    s = _normalise_unit(text)
    for u in UNITS:
        if u[0].lower() == s:
            return u
    return None


def _accepted(kind):
    if kind is None:
        return ", ".join(u[0] for u in UNITS)
    return ", ".join(units_of(kind))


def parse_decimal(text):
    """'12.5' -> (125, 1): an unsigned decimal as (mantissa, decimal places), no float."""
    s = text.strip()
    if s.startswith("-"):
        raise ValueError("%r: quantities are never negative" % text)
    parts = s.split(".")
    if len(parts) > 2 or not parts[0] or (len(parts) == 2 and not parts[1]):
        raise ValueError("%r is not a decimal number; write digits like 12 or 12.5" % text)
    digits = parts[0] + (parts[1] if len(parts) == 2 else "")
    if len(digits) > _MAX_DIGITS:
        raise ValueError("%r has more than %d digits" % (text, _MAX_DIGITS))
    for c in digits:
        if c < "0" or c > "9":
            raise ValueError("%r is not a decimal number; write digits like 12 or 12.5" % text)
    return int(digits), (len(parts[1]) if len(parts) == 2 else 0)


def parse_quantity(text, kind=None):
    """'250mcg/day' -> ('dose_rate', 250_000): a number with a unit from UNITS,
    converted exactly to the internal unit. Spaces, 'µ'/'μ' for 'u' and 'ug' for
    'mcg' are accepted. Units that are whole internal units (mcg, uL/h, ...) reject
    digits finer than the internal resolution; mL/day and uL/day (not whole nL/h)
    round down. With `kind`, any other kind is rejected. Errors (ValueError) name
    the accepted units."""
    if not isinstance(text, str):
        raise ValueError("expected text like '250mcg/day', got %r" % (text,))
    s = text.strip()
    i = 0
    while i < len(s) and (s[i] == "." or ("0" <= s[i] <= "9")):
        i += 1
    if i == 0:
        if s.startswith("-"):
            raise ValueError("%r: quantities are never negative" % text)
        raise ValueError("%r does not start with a number; write e.g. 250mcg/day, 12.5uL/h, 2mL"
                         % text)
    mant, places = parse_decimal(s[:i])
    utext = s[i:].strip()
    if not utext:
        raise ValueError("%r has no unit; accepted units: %s" % (text, _accepted(kind)))
    u = find_unit(utext)
    if u is None:
        raise ValueError("unknown unit %r in %r; accepted units: %s" % (utext, text, _accepted(kind)))
    sym, k, num, den = u[0], u[1], u[2], u[3]
    if kind is not None and k != kind:
        raise ValueError("%r is a %s, expected a %s in %s" % (text, kind_name(k), kind_name(kind),
                                                                _accepted(kind)))
    total_den = den * 10 ** places
    v, rem = divmod(mant * num, total_den)
    if rem and den == 1:
        raise ValueError("%r is finer than the resolution of 1 %s; use fewer decimals"
                         % (text, _pick(INTERNAL_UNIT, k)))
    return k, v


def parse_as(text, kind):
    """parse_quantity(text, kind)[1]: the internal integer, or ValueError."""
    return parse_quantity(text, kind)[1]


def parse_time_of_day(text):
    """'06:30' or '06:30:15' -> seconds after midnight (0..86399)."""
    parts = text.strip().split(":")
    ok = 2 <= len(parts) <= 3
    vals = []
    for p in parts:
        if not p or len(p) > 2:
            ok = False
            break
        for c in p:
            if c < "0" or c > "9":
                ok = False
        if not ok:
            break
        vals.append(int(p))
    if ok:
        while len(vals) < 3:
            vals.append(0)
        h, m, sec = vals
        if h < 24 and m < 60 and sec < 60:
            return h * 3600 + m * 60 + sec
    raise ValueError("%r is not a time of day; write HH:MM or HH:MM:SS, 00:00 to 23:59:59" % text)


# ---- formatting -------------------------------------------------------------------

def fmt(value, unit, places=None):
    """Internal integer -> '25.0 uL/h' in the given unit: rounded to nearest (ties away
    from zero) at the unit's max decimals (or `places`), trailing zeros dropped down to
    the unit's min decimals (all kept when `places` is given)."""
    u = _entry(unit)
    num, den, minp, maxp = u[2], u[3], u[4], u[5]
    if places is not None:
        minp = maxp = places
    neg = value < 0
    a = -value if neg else value
    scale = 10 ** maxp
    q = (a * den * scale * 2 + num) // (num * 2)
    whole, frac = divmod(q, scale)
    s = str(whole)
    if maxp:
        f = str(frac)
        f = "0" * (maxp - len(f)) + f
        keep = maxp
        while keep > minp and f[keep - 1] == "0":
            keep -= 1
        if keep:
            s += "." + f[:keep]
    if neg and q:
        s = "-" + s
    return s + " " + u[0]


def format_duration(seconds):
    """Seconds in the largest of day/h/min/s that divides them: '12 h', '90 s'."""
    for sym, n in (("day", S_PER_DAY), ("h", S_PER_H), ("min", S_PER_MIN)):
        if seconds and seconds % n == 0:
            return "%d %s" % (seconds // n, sym)
    return "%d s" % seconds


def format_quantity(kind, value):
    """Internal integer of a kind in its default unit ('300 mcg/day', '25.0 uL/h')."""
    if kind == DURATION:
        return format_duration(value)
    return fmt(value, _pick(DEFAULT_UNIT, kind))


def format_time_of_day(seconds):
    """Seconds after midnight -> 'HH:MM' (or 'HH:MM:SS' when seconds are not whole minutes)."""
    h, r = divmod(seconds % S_PER_DAY, 3600)
    m, sec = divmod(r, 60)
    if sec:
        return "%02d:%02d:%02d" % (h, m, sec)
    return "%02d:%02d" % (h, m)


def units_markdown():
    """The units table for docs/therapy.md, generated from UNITS."""
    lines = ["| unit | quantity | internal unit | 1 unit = | shown with |", "|---|---|---|---|---|"]
    for sym, kind, num, den, minp, maxp in UNITS:
        if den == 1:
            eq = "%d" % num
        else:
            eq = "%d/%d" % (num, den)
        shown = "%d" % maxp if minp == maxp else "%d-%d" % (minp, maxp)
        lines.append("| %s | %s | %s | %s %s | %s decimals |"
                     % (sym, kind_name(kind), _pick(INTERNAL_UNIT, kind), eq,
                        _pick(INTERNAL_UNIT, kind), shown))
    return "\n".join(lines)
