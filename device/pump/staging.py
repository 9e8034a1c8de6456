"""Two-step changes, enforced on the device: stage (validate, show) then confirm (commit).

    st = Stager(ctx)                       # ctx: .limits .program .motor_max_nl_h
    cid = st.stage("program", d, now)      # validates fully; nothing changes yet
    st.summary()                           # old vs new for the host to show
    change = st.confirm(cid, now)          # -> Change(kind, obj); the caller applies it

- One change is staged at a time; staging another replaces it (its id dies).
- The id is 6 hex digits: a one-byte counter and a CRC-16 of the kind and payload, so
  an id read off one staged change never confirms a different one.
- An unconfirmed change expires ttl_s (default 120 s) after staging; a wrong id, an
  expired change or nothing staged raise StagingError and change nothing.
- confirm re-validates against the context as it is then (limits may have changed)
  and returns the object with start_s set to the confirm time; the caller (the
  controller) persists and applies it. Staging never touches the context.

Kinds and payloads (docs/therapy.md): "program" (a therapy.Program dict), "limits" (a
limits.HardLimits dict; the current program must also fit the new limits), "bolus"
({"kind": "clinician", "dose_ng" | "volume_nl", "duration_s"[, "conc_ng_ml"]} or
{"kind": "prime", "volume_nl", "duration_s"}).

Context attributes read: limits (HardLimits), program (therapy.Program), motor_max_nl_h
(int); optional dead_volume_nl (pump + catheter, for the bridge-bolus preview) and
dose_24h_ng (dose given in the last 24 h, for the bolus daily-dose check).
"""
from micropython import const

from pump import therapy, units
from pump.limits import (HardLimits, LimitError, FieldError, check_program, check_bolus, no_extra,
                         show, LIMIT_FIELDS)
from pump.units import DOSE, DOSE_RATE, VOLUME, FLOW, DURATION

try:
    from typing import Optional  # noqa: F401
except ImportError:
    pass

DEFAULT_TTL_S = const(120)
KINDS = ("program", "limits", "bolus")


class StagingError(ValueError):
    """confirm refused: nothing staged, wrong id, or expired. Nothing changed."""


class Change:
    """A staged change: kind, the validated object (Program, HardLimits or Bolus),
    its payload dict, id and staging time."""

    def __init__(self, kind, obj, payload, cid, staged_at):
        self.kind = kind
        self.obj = obj
        self.payload = payload
        self.id = cid
        self.staged_at = staged_at

    def __repr__(self):
        return "Change(%s %s %r)" % (self.id, self.kind, self.payload)


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of bytes (no table: small RAM)."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def canonical(obj):
    """A stable text form of plain data (dict keys sorted), the same on CPython and VM."""
    if isinstance(obj, dict):
        return "{" + ",".join(canonical(k) + ":" + canonical(obj[k]) for k in sorted(obj)) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(canonical(v) for v in obj) + "]"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if obj is None:
        return "null"
    if isinstance(obj, int):
        return "%d" % obj
    if isinstance(obj, str):
        return '"' + obj.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise FieldError("payload may hold only dicts, lists, ints, strings, booleans and null; got %r"
                     % (obj,))


def build_bolus(payload, ctx, now):
    """A validated, limit-checked therapy.Bolus from a bolus request payload."""
    if not isinstance(payload, dict):
        raise FieldError("bolus: expected a dict with 'kind'")
    kind = payload.get("kind")
    prog = ctx.program
    if kind == "clinician":
        no_extra(payload, ("kind", "dose_ng", "volume_nl", "duration_s", "conc_ng_ml"),
                 "clinician bolus")
        conc = payload.get("conc_ng_ml", prog.conc)
        if prog.mode != therapy.STOPPED_MODE and conc != prog.conc:
            raise FieldError("clinician bolus: concentration %s differs from the program's %s; "
                             "the reservoir holds one drug"
                             % (units.format_quantity(units.CONC, conc),
                                units.format_quantity(units.CONC, prog.conc)))
        if not conc:
            raise FieldError("clinician bolus: no program concentration; give 'conc_ng_ml'")
        if "duration_s" not in payload:
            raise FieldError("clinician bolus: missing field 'duration_s' (at least 60 s)")
        b = therapy.clinician_bolus(conc, payload["duration_s"], payload.get("dose_ng"),
                                    payload.get("volume_nl"))
    elif kind == "prime":
        no_extra(payload, ("kind", "volume_nl", "duration_s"), "priming bolus")
        if "volume_nl" not in payload or "duration_s" not in payload:
            raise FieldError("priming bolus: needs 'volume_nl' and 'duration_s'")
        b = therapy.prime_bolus(payload["volume_nl"], payload["duration_s"], prog.conc)
    else:
        raise FieldError("bolus: kind %r cannot be staged; stage 'clinician' or 'prime' "
                         "(demand boluses go through the ledger, bridges follow a program)"
                         % (kind,))
    check_bolus(b, ctx.limits, ctx.motor_max_nl_h, therapy.rate_at(prog, now),
                getattr(ctx, "dose_24h_ng", None))
    return b


def validate(kind, payload, ctx, now):
    """The validated object for a staged payload, or FieldError/LimitError."""
    if kind == "program":
        p = therapy.Program.from_dict(payload)
        check_program(p, ctx.limits, ctx.motor_max_nl_h)
        return p
    if kind == "limits":
        lim = HardLimits.from_dict(payload, ctx.motor_max_nl_h)
        try:
            check_program(ctx.program, lim, ctx.motor_max_nl_h)
        except LimitError as e:
            raise LimitError("the current program does not fit the new limits: %s; change the "
                             "program first" % e, e.limit, e.value, e.lo, e.hi)
        return lim
    if kind == "bolus":
        return build_bolus(payload, ctx, now)
    raise FieldError("unknown change kind %r; kinds: %s" % (kind, ", ".join(KINDS)))


class Stager:
    """Holds at most one staged change. ctx: see module doc. seed: the counter's start
    (pass something that differs between boots, e.g. now, so ids do not repeat)."""

    def __init__(self, ctx, ttl_s=DEFAULT_TTL_S, seed=0):
        if ttl_s <= 0:
            raise ValueError("staging ttl must be > 0 s")
        self.ctx = ctx
        self.ttl_s = ttl_s
        self._count = seed & 0xFF
        self._staged = None  # type: Optional[Change]

    def stage(self, kind, payload, now):
        """Validate fully and stage; return the change id. A rejected payload leaves the
        previously staged change (if any) in place."""
        obj = validate(kind, payload, self.ctx, now)
        text = canonical([kind, payload])
        self._count = (self._count + 1) & 0xFF
        cid = "%02x%04x" % (self._count, crc16(text.encode()))
        self._staged = Change(kind, obj, payload, cid, now)
        return cid

    def pending(self, now):
        """The staged Change, or None (an expired one is dropped)."""
        c = self._staged
        if c is not None and (now - c.staged_at >= self.ttl_s or now < c.staged_at):
            self._staged = None
            return None
        return c

    def cancel(self):
        self._staged = None

    def confirm(self, change_id, now, blocked_reason=None):
        """Commit the staged change named by change_id: returns Change with obj started
        at now (Program/Bolus start_s). StagingError if nothing is staged, the id differs
        (the change stays staged) or it expired; the re-validation error if the change
        no longer fits the context (dropped). blocked_reason (alarm, self-test) refuses a
        bolus and keeps it staged."""
        c = self._staged
        if c is None:
            raise StagingError("no change is staged (or it was replaced); stage it again")
        if now - c.staged_at >= self.ttl_s or now < c.staged_at:
            self._staged = None
            raise StagingError("change %s expired: not confirmed within %d s of staging; stage "
                               "it again" % (c.id, self.ttl_s))
        if change_id != c.id:
            raise StagingError("change id %r does not name the staged change; confirm with the "
                               "id shown for it" % (change_id,))
        if c.kind == "bolus" and blocked_reason:
            raise StagingError("bolus not started: %s" % blocked_reason)
        try:
            obj = validate(c.kind, c.payload, self.ctx, now)
        except ValueError:
            self._staged = None
            raise
        if isinstance(obj, (therapy.Program, therapy.Bolus)):
            obj = obj.started(now)
        self._staged = None
        return Change(c.kind, obj, c.payload, c.id, c.staged_at)

    def summary(self, now=None):
        """Old vs new for the staged change (None if nothing staged). Program: per side
        mode, conc_ng_ml, dose_ng_day (largest 24 h dose), volume_nl_day (next 24 h),
        rate_nl_h (now), peak_nl_h and a 'text' dict; plus 'bridge' (Bolus dict or None)
        when ctx has dead_volume_nl. The host adds days-to-empty (therapy.time_to_deliver)."""
        c = self._staged
        if c is None:
            return None
        t = c.staged_at if now is None else now
        if c.kind == "program":
            new = c.obj.started(t)
            out = {"kind": "program", "id": c.id, "old": program_summary(self.ctx.program, t),
                   "new": program_summary(new, t), "bridge": None}
            dv = getattr(self.ctx, "dead_volume_nl", 0)
            if dv:
                b = therapy.bridge_bolus(self.ctx.program, new, dv, t)
                out["bridge"] = None if b is None else b.to_dict()
            return out
        if c.kind == "limits":
            return {"kind": "limits", "id": c.id, "old": limits_summary(self.ctx.limits),
                    "new": limits_summary(c.obj)}
        b = c.obj
        return {"kind": "bolus", "id": c.id, "old": None,
                "new": {"bolus": b.to_dict(),
                        "text": {"dose": show(DOSE, b.dose_ng), "volume": show(VOLUME, b.volume_nl),
                                 "duration": show(DURATION, b.duration_s),
                                 "rate": show(FLOW, b.rate_nl_h())}}}


def program_summary(p, now):
    """Figures of one program for the side-by-side view (see Stager.summary)."""
    vol = therapy.daily_volume(p, now)
    s = {"mode": p.mode, "conc_ng_ml": p.conc, "dose_ng_day": p.daily_dose(),
         "volume_nl_day": vol, "rate_nl_h": therapy.rate_at(p, now), "peak_nl_h": p.peak_rate()}
    s["text"] = {"dose": show(DOSE_RATE, s["dose_ng_day"]),
                 "volume": units.fmt(vol, "mL", 3) + "/day",
                 "rate": show(FLOW, s["rate_nl_h"]),
                 "conc": show(units.CONC, p.conc) if p.conc else "-"}
    return s


def limits_summary(lim):
    d = lim.to_dict()
    text = {}
    for name, key, kind, _d, _lo, _hi in LIMIT_FIELDS:
        text[name] = show(kind, d[key])
    return {"limits": d, "text": text}


def format_summary(summary):
    """Lines 'field: old -> new' of a summary's text dicts, for a terminal."""
    if summary is None:
        return []
    old = summary.get("old") or {}
    new = summary["new"]
    lines = ["change %s (%s)" % (summary["id"], summary["kind"])]
    ot = old.get("text", {})
    nt = new.get("text", {})
    for k in sorted(nt):
        lines.append("%s: %s -> %s" % (k, ot.get(k, "-"), nt[k]))
    if summary.get("bridge"):
        b = summary["bridge"]
        lines.append("bridge: %s of old drug over %s before the new program"
                     % (show(VOLUME, b["volume_nl"]), units.format_duration(b["duration_s"])))
    return lines
