"""`pumpctl config`, `pumpctl limits`, `pumpctl program continuous`: therapy settings in user units.

Values are written with units (`0.0203uL/step`, `2mL`, `250mcg/day`, `12.5uL/h`, `500mcg/mL`) and
parsed by the device's own units module (device/pump/units.py, loaded by path); the pump re-validates
everything. Program changes use the device's stage-then-confirm: the old and new figures are shown
side by side and confirmed by the user (y/N on a terminal, or --yes for scripts).

Exit codes as board_commands, plus 2: a value could not be parsed, or the change was not confirmed
(nothing changed on the pump).
"""
import json
import sys
import types

from pumpctl.cli import register
from pumpctl import link as L
from pumpctl.board_commands import port_args, argparse_suppress, _fail

EXIT_USAGE = 2  # a value the host could not parse, or a change not confirmed: nothing sent/changed


def _load_units():
    """device/pump/units.py on CPython: its imports (micropython.const, pump.dose) are supplied
    for the load only, so the host never holds a `pump` package of its own."""
    saved = {k: sys.modules.get(k) for k in ("micropython", "pump", "pump.dose")}
    try:
        if saved["micropython"] is None:
            mp = types.ModuleType("micropython")
            mp.const = lambda x: x
            sys.modules["micropython"] = mp
        dose = L._load("dose")
        pkg = types.ModuleType("pump")
        pkg.dose = dose
        sys.modules["pump"] = pkg
        sys.modules["pump.dose"] = dose
        return L._load("units")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


U = _load_units()

# user key -> (device field, kind or None for text)
CONFIG_FIELDS = (
    ("drug", "drug", None),
    ("cal", "cal_pl", U.CAL),
    ("low", "low_nl", U.VOLUME),
    ("dead_volume", "dead_volume_nl", U.VOLUME),
)


class UsageError(ValueError):
    pass


def _is_json(args):
    return getattr(args, "json", False)


def _usage(args, msg):
    if _is_json(args):
        print(json.dumps({"error": "usage", "message": msg}))
    print("pumpctl: %s" % msg, file=sys.stderr)
    return EXIT_USAGE


def _parse(field, text, kind):
    """A user quantity of one kind -> internal integer; UsageError naming the field and units."""
    accepted = ", ".join(U.units_of(kind))
    try:
        return U.parse_as(text, kind)
    except ValueError as e:
        msg = str(e)
        if "accepted units" not in msg and accepted not in msg:
            msg += "; accepted units: %s" % accepted
        raise UsageError("%s: %s (a %s, e.g. %s)" % (field, msg, U.kind_name(kind), _example(kind))) from None


def _example(kind):
    return {U.CAL: "0.0203uL/step", U.VOLUME: "2mL", U.CONC: "500mcg/mL", U.FLOW: "12.5uL/h",
            U.DOSE_RATE: "250mcg/day"}.get(kind, U.units_of(kind)[0])


def _show(kind, v):
    if v is None:
        return "-"
    if kind is None:
        return str(v)
    return U.format_quantity(kind, v)


# --- pumpctl config -------------------------------------------------------------------

def config_setup(p):
    p.add_argument("action", nargs="?", choices=("get", "set"), default="get",
                   help="get (default) shows the config; set changes the fields given")
    p.add_argument("assignments", nargs="*", metavar="KEY=VALUE",
                   help="with set: drug=NAME, cal=0.0203uL/step, low=2mL, dead_volume=0.1mL")
    port_args(p)


def parse_assignments(items):
    """['low=2mL', ...] -> {'low_nl': 2000000, ...}; UsageError on a bad key or value."""
    if not items:
        raise UsageError("config set: give KEY=VALUE pairs; keys: %s" % ", ".join(k for k, _f, _k in CONFIG_FIELDS))
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        match = [f for f in CONFIG_FIELDS if f[0] == key or f[1] == key]
        if not eq or not match:
            raise UsageError("config set: %r is not KEY=VALUE with a key of: %s" % (
                item, ", ".join(k for k, _f, _k in CONFIG_FIELDS)))
        user, field, kind = match[0]
        if kind is None:
            if len(value) > 24:
                raise UsageError("%s: a name of at most 24 characters, got %d" % (user, len(value)))
            out[field] = value
        else:
            out[field] = _parse(user, value, kind)
    return out


def format_config(cfg):
    rows = []
    for user, field, kind in CONFIG_FIELDS:
        if field in cfg:
            rows.append("  %-12s %s" % (user, _show(kind, cfg[field]) if cfg[field] != "" or kind else "-"))
    known = {f for _u, f, _k in CONFIG_FIELDS}
    for k in sorted(cfg):
        if k not in known:
            rows.append("  %-12s %s" % (field_name(k), _show(field_kind(k), cfg[k])))
    return "\n".join(rows)


def config(args):
    updates = None
    if args.action == "set":
        try:
            updates = parse_assignments(args.assignments)
        except UsageError as e:
            return _usage(args, str(e))
    elif args.assignments:
        return _usage(args, "config get takes no KEY=VALUE (did you mean `pumpctl config set %s`?)"
                      % " ".join(args.assignments))
    try:
        with L.Link.open(args.port, timeout=args.timeout) as link:
            cfg = link.request("config", updates) if updates else link.request("config")
            port = link.port
        if updates and "cal_pl" in updates and "cal_pl" not in cfg:
            cfg = dict(cfg, cal_pl=updates["cal_pl"])  # the pump accepted it; its config read omits it
    except L.LinkError as e:
        return _fail(args, e)
    if _is_json(args):
        print(json.dumps(cfg))
    else:
        print("config of the pump on %s%s" % (port, " (changed)" if updates else ""))
        print(format_config(cfg))
    return 0


# --- pumpctl limits -------------------------------------------------------------------

_SUFFIX_KIND = (("_nl_h", U.FLOW), ("_ng_day", U.DOSE_RATE), ("_ng_ml", U.CONC), ("_ng", U.DOSE),
                ("_nl", U.VOLUME), ("_pl", U.CAL), ("_s", U.DURATION))


def field_kind(key):
    """The unit kind of a device field by its suffix (max_rate_nl_h -> flow), None for a count."""
    for suffix, kind in _SUFFIX_KIND:
        if key.endswith(suffix):
            return kind
    return None


def field_name(key):
    for suffix, _kind in _SUFFIX_KIND:
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def limits_setup(p):
    port_args(p)


def limits(args):
    try:
        with L.Link.open(args.port, timeout=args.timeout) as link:
            lim = link.request("limits")
            port = link.port
    except L.LinkError as e:
        return _fail(args, e)
    if _is_json(args):
        print(json.dumps({"limits": lim, "text": {field_name(k): _show(field_kind(k), v) for k, v in lim.items()}}))
        return 0
    print("hard limits of the pump on %s" % port)
    for k in sorted(lim):
        print("  %-16s %s" % (field_name(k), _show(field_kind(k), lim[k])))
    return 0


# --- pumpctl program continuous -------------------------------------------------------

def program_setup(p):
    sub = p.add_subparsers(dest="mode", metavar="MODE")
    sub.required = True
    c = sub.add_parser("continuous", help="a constant dose rate (250mcg/day) or flow (12.5uL/h)",
                       description="Stage a continuous program, show old vs new, confirm.")
    c.add_argument("amount", metavar="DOSE_OR_RATE", help="dose rate (e.g. 250mcg/day) or flow (e.g. 12.5uL/h)")
    c.add_argument("--conc", required=True, help="drug concentration, e.g. 500mcg/mL")
    c.add_argument("--yes", "-y", action="store_true", help="confirm without asking (for scripts)")
    port_args(c)


def continuous_change(amount, conc):
    """('250mcg/day', '500mcg/mL') -> the program dict (docs/therapy.md); UsageError if malformed."""
    conc_ng_ml = _parse("conc", conc, U.CONC)
    accepted = "%s (dose rate) or %s (flow)" % (", ".join(U.units_of(U.DOSE_RATE)), ", ".join(U.units_of(U.FLOW)))
    try:
        kind, v = U.parse_quantity(amount)
    except ValueError as e:
        raise UsageError("DOSE_OR_RATE: %s; accepted units: %s" % (str(e).split("; accepted units")[0], accepted)) \
            from None
    if kind == U.DOSE_RATE:
        return {"mode": "continuous", "conc_ng_ml": conc_ng_ml, "dose_ng_day": v}
    if kind == U.FLOW:
        return {"mode": "continuous", "conc_ng_ml": conc_ng_ml, "rate_nl_h": v}
    raise UsageError("DOSE_OR_RATE: %r is a %s; give a dose rate or a flow: %s" % (amount, U.kind_name(kind), accepted))


SIDE_ROWS = (("mode", None), ("dose", "dose"), ("volume", "volume"), ("rate", "rate"), ("conc", "conc"))


def format_side_by_side(summary):
    old = summary.get("old") or {}
    new = summary.get("new") or {}
    ot, nt = old.get("text", {}), new.get("text", {})
    lines = ["%-8s %-16s %s" % ("", "old", "new")]
    for label, key in SIDE_ROWS:
        o = old.get("mode", "-") if key is None else ot.get(key, "-")
        n = new.get("mode", "-") if key is None else nt.get(key, "-")
        lines.append("%-8s %-16s %s" % (label, o, n))
    b = summary.get("bridge")
    if b:
        lines.append("bridge   %s of the old drug over %s before the new program" % (
            U.format_quantity(U.VOLUME, b.get("volume_nl", 0)), U.format_duration(b.get("duration_s", 0))))
    return "\n".join(lines)


def _ask(prompt, out):
    try:
        out.write(prompt)
        out.flush()
        answer = sys.stdin.readline()
    except (EOFError, OSError):
        return False
    return answer.strip().lower() in ("y", "yes")


def program(args):
    try:
        change = continuous_change(args.amount, args.conc)
    except UsageError as e:
        return _usage(args, str(e))
    if not args.yes and not sys.stdin.isatty():
        return _usage(args, "not confirmed: stdin is not a terminal, so pumpctl cannot ask; "
                      "re-run with --yes to confirm this program (nothing was changed)")
    try:
        with L.Link.open(args.port, timeout=args.timeout) as link:
            staged = link.request("stage", {"kind": "program", "change": change})
            cid, summary = staged["change_id"], staged.get("summary") or {}
            if not _is_json(args):
                print("program change %s on %s" % (cid, link.port))
                print(format_side_by_side(summary))
            if not args.yes and not _ask("Apply this change? [y/N] ", sys.stderr if _is_json(args) else sys.stdout):
                if _is_json(args):
                    print(json.dumps({"error": "not_confirmed", "change_id": cid, "summary": summary,
                                      "message": "not confirmed; nothing changed"}))
                print("pumpctl: not confirmed; nothing changed", file=sys.stderr)
                return EXIT_USAGE
            done = link.request("confirm", {"change_id": cid})
    except L.LinkError as e:
        return _fail(args, e)
    if _is_json(args):
        print(json.dumps({"change_id": cid, "confirmed": True, "state": done.get("state"), "program": change,
                          "summary": summary}))
    else:
        print("confirmed change %s; pump %s" % (cid, done.get("state")))
    return 0


register("config", "show (get) or change (set KEY=VALUE) drug, calibration, low-reservoir level, dead volume",
         config_setup, config)
register("limits", "the hard limits in force, in user units", limits_setup, limits)
register("program", "stage, review (old vs new) and confirm a therapy program", program_setup, program)
