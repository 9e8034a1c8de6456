"""Scenario runner, host side: TOML scenario -> the firmware on the virtual board in the
MicroPython VM, in virtual time -> a JSON report (format: docs/simulation.md).

    from sim import scenario
    report = scenario.run_file("tests/scenarios/ninety_days.toml", on_sample=print)

The VM side is host_tools/sim/vmscenario.py; this module parses and checks the file,
converts user units (mcg, mL, uL/h, min) to the device's (ng, nL, nL/h, s), launches the
VM, streams its output (for a live status line) and assembles the report.
"""
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "host_tools" / "sim"
DEFAULT_HEAP = "256K"
EPOCH_2000 = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
DEFAULT_START = "2026-01-05T08:00:00Z"

SAMPLE_FIELDS = ("t_ms", "state", "rate_nl_h", "programmed_nl", "commanded_steps", "commanded_nl",
                 "pumped_nl", "delivered_nl", "leaked_nl", "pressure_kpa", "adc_code", "sensor_kpa",
                 "reservoir_fw_nl", "reservoir_true_nl", "alarms")

# user unit suffix -> (device suffix, factor); longest suffixes first
UNITS = (("_mcg_ml", "_ng_ml", 1000), ("_mcg_day", "_ng_day", 1000), ("_ml_h", "_nl_h", 1_000_000),
         ("_ul_h", "_nl_h", 1000), ("_mcg", "_ng", 1000), ("_ml", "_nl", 1_000_000), ("_ul", "_nl", 1000),
         ("_min", "_s", 60), ("_h", "_s", 3600))

FAULTS = {"occlusion": "fraction", "release": None, "disconnect": None, "leak": "ratio", "reconnect": None,
          "stall": None, "unstall": None, "reservoir_empty": None, "sensor": "mode"}
EVENT_KINDS = ("refill", "bolus", "program", "action", "acknowledge", "config", "limits", "set_clock",
               "power_loss", "reset", "host", "host_stall", "host_stops_reading", "host_resumes_reading",
               "note") + tuple(FAULTS)
HOST_KINDS = ("host", "host_stall", "host_stops_reading", "host_resumes_reading")
TOP_KEYS = ("name", "description", "duration", "sample", "heap", "start", "board", "physics", "pump",
            "event", "expect")


class ScenarioError(ValueError):
    """The scenario file is wrong: the message names the field and what to write."""


def parse_duration(v, field):
    """'90d', '1d 6h 30m', '45s', '2.5h', '500ms' -> ms."""
    if not isinstance(v, str):
        raise ScenarioError("%s: write a duration as a string with units, e.g. \"1d 6h\" or \"90m\"; got %r"
                            % (field, v))
    total = 0.0
    rest = v.strip()
    if not rest:
        raise ScenarioError("%s: empty duration" % field)
    for num, unit in re.findall(r"\s*([0-9]*\.?[0-9]+)\s*(ms|d|h|m|s)\s*", rest):
        total += float(num) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[unit]
    if re.sub(r"\s*([0-9]*\.?[0-9]+)\s*(ms|d|h|m|s)\s*", "", rest):
        raise ScenarioError("%s: %r is not a duration; use numbers with d, h, m, s or ms (\"2d 6h\")" % (field, v))
    return int(round(total))


def to_device(d, field):
    """User-unit keys -> the device's integer units (dose_mcg_day = 300 -> dose_ng_day = 300000)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = to_device(v, field + "." + k)
            continue
        for suf, dev, factor in UNITS:
            if k.endswith(suf) and not isinstance(v, (bool, str, list)):
                k = k[: -len(suf)] + dev
                v = int(round(v * factor))
                break
        out[k] = v
    return out


def wall_seconds(v):
    if isinstance(v, str):
        v = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return int((v - EPOCH_2000).total_seconds())
    raise ScenarioError("start: a date and time such as 2026-01-05T08:00:00Z, got %r" % (v,))


def _event(raw, i):
    where = "event %d" % (i + 1)
    if not isinstance(raw, dict) or "do" not in raw or "at" not in raw:
        raise ScenarioError("%s: every [[event]] needs at = \"<time>\" and do = \"<kind>\"" % where)
    e = dict(raw)
    kind = e.pop("do")
    where += " (%s)" % kind
    at = parse_duration(e.pop("at"), where + " at")
    label = e.pop("label", None)
    if kind not in EVENT_KINDS:
        raise ScenarioError("%s: do = %r unknown; one of %s" % (where, kind, ", ".join(EVENT_KINDS)))
    out = {"t_ms": at, "do": kind}
    if label:
        out["label"] = label
    if kind in FAULTS:
        arg = FAULTS[kind]
        extra = set(e) - ({arg} if arg else set())
        if extra:
            raise ScenarioError("%s: unknown field(s) %s" % (where, ", ".join(sorted(extra))))
        out.update({"do": "fault", "kind": kind, "value": e.get(arg) if arg else None})
        return out
    if kind == "refill":
        d = to_device(e, where)
        for k in ("volume_nl", "conc_ng_ml"):
            if k not in d:
                raise ScenarioError("%s: needs volume_ml and conc_mcg_ml" % where)
        out.update(d)
    elif kind == "bolus":
        out["bolus"] = to_device(e, where)
    elif kind == "program":
        start = e.pop("start", False)
        out["program"] = to_device(e, where)
        out["start"] = start
    elif kind == "action":
        if e.get("name") not in ("start", "stop", "suspend", "resume", "clear"):
            raise ScenarioError("%s: name must be start, stop, suspend, resume or clear" % where)
        out["name"] = e["name"]
    elif kind in ("config", "limits"):
        out["fields"] = to_device(e, where)
    elif kind == "power_loss":
        out["off_ms"] = parse_duration(e.get("off", "0s"), where + " off")
    elif kind == "reset":
        out["cause"] = e.get("cause", "wdt")
    elif kind == "host":
        line = e.pop("line", None)
        if isinstance(line, dict):  # a TOML table: sent as compact JSON
            line = json.dumps(line, separators=(",", ":"))
        if not isinstance(line, str) or "\n" in line:
            raise ScenarioError("%s: line = '{\"id\":1,\"cmd\":\"status\"}' (one protocol request line, "
                                "no newline; a table is sent as JSON)" % where)
        if e:
            raise ScenarioError("%s: unknown field(s) %s" % (where, ", ".join(sorted(e))))
        out["line"] = line
    elif kind == "host_stall":
        if set(e) != {"duration"}:
            raise ScenarioError("%s: takes duration = \"10m\" (how long the host does not read)" % where)
        out["do"] = "host_stops_reading"
        out["resume_ms"] = at + parse_duration(e["duration"], where + " duration")
    elif kind in ("host_stops_reading", "host_resumes_reading"):
        if e:
            raise ScenarioError("%s: unknown field(s) %s" % (where, ", ".join(sorted(e))))
    else:
        out.update(e)
    return out


def load(path):
    """Parse and check a scenario file -> the spec the VM driver runs (plus 'expect')."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError("%s: not valid TOML: %s" % (path.name, e))
    return from_dict(raw, path.stem)


def from_dict(raw, default_name="scenario"):
    unknown = set(raw) - set(TOP_KEYS)
    if unknown:
        raise ScenarioError("unknown top-level key(s) %s; known: %s" % (", ".join(sorted(unknown)), ", ".join(TOP_KEYS)))
    if "duration" not in raw:
        raise ScenarioError("duration: missing (e.g. duration = \"7d\")")
    spec = {
        "name": raw.get("name", default_name),
        "description": raw.get("description", ""),
        "duration_ms": parse_duration(raw["duration"], "duration"),
        "sample_ms": parse_duration(raw.get("sample", "10m"), "sample"),
        "heap": raw.get("heap", DEFAULT_HEAP),
        "wall_start": wall_seconds(raw.get("start", DEFAULT_START)),
        "board": raw.get("board", {}),
        "physics": dict(raw.get("physics", {})),
        "expect": raw.get("expect", {}),
    }
    if spec["sample_ms"] <= 0:
        raise ScenarioError("sample: must be longer than 0")
    if str(SIM) not in sys.path:
        sys.path.insert(0, str(SIM))
    from vboard import physics

    physics.params(spec["physics"])  # names and values checked here, with the VM's message
    setup = [{"t_ms": 0, "do": "set_clock"}]
    pump = dict(raw.get("pump", {}))
    for k in pump:
        if k not in ("config", "limits", "refill", "program", "start"):
            raise ScenarioError("pump.%s unknown; [pump] takes config, limits, refill, program, start" % k)
    if "config" in pump:
        setup.append({"t_ms": 0, "do": "config", "fields": to_device(pump["config"], "pump.config")})
    if "limits" in pump:
        setup.append({"t_ms": 0, "do": "limits", "fields": to_device(pump["limits"], "pump.limits")})
    if "refill" in pump:
        setup.append(_event(dict(pump["refill"], at="0s", do="refill"), -1))
        setup[-1]["resume"] = False
        # a first fill: the programmer acknowledges the empty-reservoir alarm of a new pump
        setup.append({"t_ms": 0, "do": "acknowledge"})
    if "program" in pump:
        setup.append({"t_ms": 0, "do": "program", "program": to_device(pump["program"], "pump.program"),
                      "start": pump.get("start", True)})
    events = [_event(e, i) for i, e in enumerate(raw.get("event", []))]
    for e in list(events):
        if "resume_ms" in e:  # host_stall: stop reading now, resume after its duration
            events.append({"t_ms": e.pop("resume_ms"), "do": "host_resumes_reading"})
    for e in events:
        if e["t_ms"] > spec["duration_ms"]:
            raise ScenarioError("event at %.3f h is after the end (duration)" % (e["t_ms"] / 3.6e6))
        if e["do"] == "host" and e["t_ms"] >= spec["duration_ms"]:
            raise ScenarioError("host event at %.3f h: must come before the end, for the pump to answer"
                                % (e["t_ms"] / 3.6e6))
    spec["host_link"] = any(e["do"] in HOST_KINDS for e in events)
    events.sort(key=lambda e: e["t_ms"])  # stable: same-time events keep their file order
    spec["events"] = setup + events
    return spec


# ---- running ---------------------------------------------------------------------------
from sim.vmrun import vm_env, micropython  # noqa: E402  (one VM path order for every runner)


def build_device_code():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from build_mpy import build_for_vm
    finally:
        sys.path.pop(0)
    build_for_vm()


def run(spec, on_sample=None, timeout=900):
    """Run a loaded spec in the VM; returns the report dict. on_sample(sample_dict)
    is called for every trace sample as it arrives (live status)."""
    build_device_code()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dosekit-sim-") as tmp:
        vm_spec = {k: v for k, v in spec.items() if k != "expect"}
        vm_spec["root"] = os.path.join(tmp, "state")
        os.mkdir(vm_spec["root"])
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(vm_spec, f)
        cmd = [micropython(), "-X", "heapsize=" + spec.get("heap", DEFAULT_HEAP), str(SIM / "vmscenario.py"), spec_path]
        proc = subprocess.Popen(cmd, env=vm_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=tmp)
        samples, events, log, console, host_io, done = [], [], [], [], [], None
        try:
            for line in proc.stdout:
                tag, _, body = line.rstrip("\n").partition(" ")
                if tag == "@S":
                    s = dict(zip(SAMPLE_FIELDS, json.loads(body)))
                    samples.append(s)
                    if on_sample is not None:
                        on_sample(s)
                elif tag == "@E":
                    events.append(json.loads(body))
                elif tag == "@L":
                    log.append(json.loads(body))
                elif tag == "@H":
                    t_ms, d, text = json.loads(body)
                    host_io.append({"t": t_ms / 1000, "dir": d, "line": text})
                elif tag == "@D":
                    done = json.loads(body)
                else:
                    console.append(line.rstrip("\n"))
                if time.monotonic() - t0 > timeout:
                    proc.kill()
                    raise RuntimeError("scenario %s: timed out after %d s" % (spec["name"], timeout))
        finally:
            rc = proc.wait()
    wall = time.monotonic() - t0
    if rc != 0 or done is None:
        raise RuntimeError("scenario %s: the VM failed (exit %s):\n%s" % (spec["name"], rc, "\n".join(console[-40:])))
    report = build_report(spec, samples, events, log, console, done, wall)
    report["host_io"] = host_io
    report["checks"] = check(spec.get("expect", {}), report)
    return report


def run_file(path, on_sample=None, timeout=900):
    return run(load(path), on_sample, timeout)


# ---- the report ------------------------------------------------------------------------
def _names():
    sys.path.insert(0, str(ROOT / "device"))
    try:
        from pump import events as ev
    finally:
        sys.path.pop(0)
    return ev


def build_report(spec, samples, events, log, console, done, wall_s):
    ev = _names()
    records = []
    alarms = []
    open_ = {}
    for t_ms, seq, up, wall, code, a0, a1, a2 in log:
        try:
            name = ev.event(code)[1]
        except ValueError:
            name = "UNKNOWN_%d" % code
        rec = {"t_s": t_ms / 1000, "seq": seq, "uptime_ms": up, "wall": wall, "event": name, "args": [a0, a1, a2]}
        if code in (ev.EV_ALARM_RAISED, ev.EV_ALARM_ACK, ev.EV_ALARM_CLEARED):
            try:
                rec["alarm"] = ev.name(a0)
            except ValueError:
                rec["alarm"] = "UNKNOWN_%d" % a0
            if code == ev.EV_ALARM_RAISED:
                a = {"alarm": rec["alarm"], "code": a0, "priority": ev.PRIORITY_NAMES[ev.priority(a0)],
                     "arg": a1, "raised_s": t_ms / 1000, "acked_s": None, "cleared_s": None}
                alarms.append(a)
                open_[a0] = a
            elif a0 in open_:
                key = "acked_s" if code == ev.EV_ALARM_ACK else "cleared_s"
                if open_[a0][key] is None:
                    open_[a0][key] = t_ms / 1000
                if code == ev.EV_ALARM_CLEARED:
                    del open_[a0]
        records.append(rec)
    trace = {k: [s[k] for s in samples] for k in SAMPLE_FIELDS}
    trace["t_s"] = [t / 1000 for t in trace.pop("t_ms")]
    for s in samples:
        s["alarms"] = [ev.name(c) for c in s["alarms"]]
    trace["alarms"] = [s["alarms"] for s in samples]
    last = samples[-1] if samples else {}
    st = done["physics"]
    cal = done["cal_pl"]
    summary = {
        "duration_s": spec["duration_ms"] / 1000,
        "programmed_nl": done["programmed_nl"],
        "commanded_steps": done["commanded_steps"],
        "commanded_nl": done["commanded_steps"] * cal // 1000,
        "pumped_nl": int(st["pumped_ul"] * 1000),
        "delivered_nl": int(st["delivered_ul"] * 1000),
        "leaked_nl": int(st["leaked_ul"] * 1000),
        "reservoir_true_nl": int(st["reservoir_ul"] * 1000),
        "reservoir_fw_nl": last.get("reservoir_fw_nl"),
        "moved_steps": st["moved_steps"], "stalled_steps": st["stalled_steps"],
        "air_steps": st["air_steps"], "ignored_steps": st["ignored_steps"],
        "peak_pressure_kpa": round(done["peak_kpa"], 2),
        "final_state": last.get("state"),
        "final_alarms": last.get("alarms", []),
        "boots": done["boots"],
        "events_refused": sum(1 for e in events if not e["ok"]),
        "cal_pl_per_step": cal,
        "wall_time_s": round(wall_s, 2),
        "status": done["status"],
        "host": done.get("host"),  # None: the scenario has no host events (no link simulated)
    }
    return {"scenario": spec["name"], "description": spec["description"],
            "format": "dosekit-sim-report/1", "summary": summary, "alarms": alarms, "events": events,
            "log": records, "trace": trace, "console": console,
            "physics": spec["physics"], "board": spec["board"]}


def check(expect, report):
    """[expect] -> [{"check", "ok", "detail"}] (docs/simulation.md lists the keys)."""
    out = []
    s = report["summary"]

    def add(name, ok, detail):
        out.append({"check": name, "ok": bool(ok), "detail": detail})

    for key in expect:
        if key not in ("final_state", "commanded_within_steps", "no_alarms", "alarm", "peak_kpa_at_least",
                       "peak_kpa_below", "no_refusals", "host_dropped_at_least", "host_received"):
            add(key, False, "unknown expectation %r" % key)
    if "final_state" in expect:
        add("final_state", s["final_state"] == expect["final_state"],
            "final state %s, expected %s" % (s["final_state"], expect["final_state"]))
    if "commanded_within_steps" in expect:
        n = expect["commanded_within_steps"]
        cal = s["cal_pl_per_step"]
        diff_steps = (s["commanded_nl"] - s["programmed_nl"]) * 1000 / cal
        add("commanded_within_steps", abs(diff_steps) <= n + 1e-9,
            "commanded - programmed = %+.2f steps (allowed +-%d)" % (diff_steps, n))
    for name in expect.get("no_alarms", []):
        hits = [a["raised_s"] for a in report["alarms"] if a["alarm"] == name
                and not (a["raised_s"] == 0 and a["cleared_s"] == 0)]  # a new pump's setup transient
        add("no_alarm " + name, not hits, "raised at %s s" % hits if hits else "never raised")
    for a in expect.get("alarm", []):
        name = a["name"]
        times = [x["raised_s"] for x in report["alarms"] if x["alarm"] == name
                 and not (x["raised_s"] == 0 and x["cleared_s"] == 0)]
        nth = a.get("occurrence", 1)
        got = times[nth - 1] if len(times) >= nth else None
        if "at" in a:
            want = parse_duration(a["at"], "expect.alarm at") / 1000
            tol = parse_duration(a.get("within", "1m"), "expect.alarm within") / 1000
            ok = got is not None and abs(got - want) <= tol
            detail = "%s #%d at %s, expected %s +- %s" % (name, nth, _fmt(got), _fmt(want), _fmt(tol))
        else:
            lo = parse_duration(a.get("after", "0s"), "expect.alarm after") / 1000
            hi = parse_duration(a["before"], "expect.alarm before") / 1000 if "before" in a else float("inf")
            ok = got is not None and lo <= got <= hi
            detail = "%s #%d at %s, expected between %s and %s" % (name, nth, _fmt(got), _fmt(lo), _fmt(hi))
        add("alarm " + name, ok, detail)
    if "peak_kpa_at_least" in expect:
        add("peak_kpa_at_least", s["peak_pressure_kpa"] >= expect["peak_kpa_at_least"],
            "peak %.1f kPa" % s["peak_pressure_kpa"])
    if "peak_kpa_below" in expect:
        add("peak_kpa_below", s["peak_pressure_kpa"] < expect["peak_kpa_below"],
            "peak %.1f kPa" % s["peak_pressure_kpa"])
    if expect.get("no_refusals"):
        bad = [e for e in report["events"] if not e["ok"]]
        add("no_refusals", not bad, "; ".join("%s at %s: %s" % (e["do"], _fmt(e["t_ms"] / 1000), e["error"])
                                              for e in bad) or "every event accepted")
    if "host_dropped_at_least" in expect:
        got = (s.get("host") or {}).get("dropped", 0)
        add("host_dropped_at_least", got >= expect["host_dropped_at_least"],
            "%d output lines dropped while the host did not read" % got)
    received = []
    for h in report.get("host_io", []):
        if h["dir"] == "out":
            try:
                received.append((h["t"], json.loads(h["line"])))
            except ValueError:
                pass
    for want in expect.get("host_received", []):
        want = dict(want)
        lo = parse_duration(want.pop("after", "0s"), "expect.host_received after") / 1000
        hi = (parse_duration(want.pop("before"), "expect.host_received before") / 1000
              if "before" in want else float("inf"))
        hits = [(t, m) for t, m in received if lo <= t <= hi and isinstance(m, dict)
                and all(m.get(k) == v for k, v in want.items())]
        add("host_received " + json.dumps(want, separators=(",", ":")), hits,
            ("first at %s: %s" % (_fmt(hits[0][0]), json.dumps(hits[0][1]))) if hits
            else "no such line between %s and %s" % (_fmt(lo), _fmt(hi)))
    return out


def _fmt(s):
    """Seconds -> '3d 04:05:06'."""
    if s is None:
        return "never"
    if s == float("inf"):
        return "the end"
    s = int(round(s))
    d, r = divmod(s, 86400)
    return "%dd %02d:%02d:%02d" % (d, r // 3600, r // 60 % 60, r % 60)


def status_line(s):
    """One line for the live display."""
    t = s["t_ms"] / 1000
    alarms = ",".join(s["alarms"]) if s["alarms"] and isinstance(s["alarms"][0], str) else (
        ",".join(_alarm_name(c) for c in s["alarms"]) or "-")
    return "day %5.2f (%s)  %-10s rate %6.1f uL/h  counted %8.1f uL  reservoir %6.2f mL  %6.1f kPa  alarms: %s" % (
        t / 86400, _fmt(t), s["state"], s["rate_nl_h"] / 1000, s["commanded_nl"] / 1000,
        (s["reservoir_fw_nl"] or 0) / 1e6, s["sensor_kpa"], alarms or "-")


def _alarm_name(code):
    return _names().name(code)


def write_report(report, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))


# ---- what `pumpctl sim run` and `make sim` print ----------------------------------------
def event_label(e):
    """A short name for an applied event: its label, else its kind (and value)."""
    if e.get("label"):
        return e["label"]
    if e["do"] == "fault":
        return e["kind"] + (" %s" % e["value"] if e.get("value") is not None else "")
    return e["do"]


def summary_text(report):
    s = report["summary"]
    ml = lambda nl: "%.3f mL" % (nl / 1e6)  # noqa: E731
    lines = [
        "%s: %s simulated in %.1f s" % (report["scenario"], _fmt(s["duration_s"]), s["wall_time_s"]),
        "  programmed (firmware target) %s" % ml(s["programmed_nl"]),
        "  commanded (counted steps)    %s  (%d steps, %+.1f steps vs programmed)" % (
            ml(s["commanded_nl"]), s["commanded_steps"],
            (s["commanded_nl"] - s["programmed_nl"]) * 1000 / s["cal_pl_per_step"]),
        "  displaced by the pump head   %s" % ml(s["pumped_nl"]),
        "  reached the patient          %s" % ml(s["delivered_nl"]),
    ]
    if s["leaked_nl"]:
        lines.append("  leaked                       %s" % ml(s["leaked_nl"]))
    extra = []
    for key, what in (("stalled_steps", "stalled"), ("air_steps", "pumped air"), ("ignored_steps", "driver off")):
        if s[key]:
            extra.append("%d %s" % (s[key], what))
    if extra:
        lines.append("  steps without drug moved     " + ", ".join(extra))
    lines.append("  reservoir: firmware %s, true %s; peak line pressure %.1f kPa; %d boot(s)" % (
        "-" if s["reservoir_fw_nl"] is None else ml(s["reservoir_fw_nl"]), ml(s["reservoir_true_nl"]),
        s["peak_pressure_kpa"], s["boots"]))
    lines.append("  final state %s, active alarms: %s" % (s["final_state"], ", ".join(s["final_alarms"]) or "none"))
    if s.get("host"):
        h = s["host"]
        lines.append("  host link: %d lines sent, %d received, %d dropped while the host did not read" % (
            h["lines_in"], h["lines_out"], h["dropped"]))
    alarms = [a for a in report["alarms"] if not (a["raised_s"] == 0 and a["cleared_s"] == 0)]
    if alarms:
        lines.append("alarms:")
        for a in alarms:
            lines.append("  %-13s %-6s %-20s %s" % (
                _fmt(a["raised_s"]), a["priority"], a["alarm"],
                "cleared " + _fmt(a["cleared_s"]) if a["cleared_s"] is not None else "still active"))
    evs = [e for e in report["events"] if e["t_ms"] > 0]
    if evs:
        lines.append("events:")
        for e in evs:
            lines.append("  %-13s %-20s %s" % (_fmt(e["t_ms"] / 1000), e.get("kind", e["do"]),
                                               event_label(e) + ("" if e["ok"] else "  REFUSED: " + e["error"])))
    if report["checks"]:
        lines.append("checks:")
        for c in report["checks"]:
            lines.append("  %s %-28s %s" % ("ok  " if c["ok"] else "FAIL", c["check"], c["detail"]))
    return "\n".join(lines)


class LiveStatus:
    """One status line, rewritten in place on a terminal (at most ~10 times a second);
    one line per simulated day otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last = 0.0
        self.day = -1
        self.width = 0

    def __call__(self, s):
        if self.tty:
            now = time.monotonic()
            if now - self.last < 0.1:
                return
            self.last = now
            line = status_line(s)
            self.width = max(self.width, len(line))
            self.stream.write("\r" + line.ljust(self.width))
            self.stream.flush()
        else:
            day = s["t_ms"] // 86_400_000
            if day != self.day:
                self.day = day
                self.stream.write(status_line(s) + "\n")

    def done(self):
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def cli_run(path, report_path=None, plot_path=None, quiet=False, heap=None, as_json=False):
    """`pumpctl sim run`: returns the exit code (1 if a check in [expect] failed)."""
    spec = load(path)
    if heap:
        spec["heap"] = heap
    live = None if quiet or as_json else LiveStatus()
    report = run(spec, on_sample=live)
    if live is not None:
        live.done()
    if report_path:
        write_report(report, report_path)
    if plot_path:
        from sim import plot

        Path(plot_path).parent.mkdir(parents=True, exist_ok=True)
        plot.plot(report, plot_path)
    if as_json:
        print(json.dumps({"summary": report["summary"], "checks": report["checks"]}, indent=1))
    else:
        print(summary_text(report))
        if report_path:
            print("report: %s" % report_path)
        if plot_path:
            print("plot: %s" % plot_path)
    return 0 if all(c["ok"] for c in report["checks"]) else 1
