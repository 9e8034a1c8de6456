"""`pumpctl ports` and `pumpctl status`: talk to a running pump over its serial port.

Exit codes: 0 ok, 1 other error, 3 port (none/several/cannot open/busy/lost),
4 not a pump (no protocol answer, timeout, protocol mismatch), 5 the pump rejected the request.
"""
import json
import sys

from pumpctl.cli import register
from pumpctl import link as L


def port_args(p):
    p.add_argument("--port", help="serial port of the board (default: the one board found; see `pumpctl ports`)")
    p.add_argument("--timeout", type=float, default=L.DEFAULT_TIMEOUT,
                   help="seconds to wait for the pump's reply (default %g)" % L.DEFAULT_TIMEOUT)
    p.add_argument("--json", action="store_true", default=argparse_suppress(), help="machine-readable output")


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS  # keep the global --json when not given after the subcommand


def _fail(args, e):
    """Report a LinkError: message on stderr (and a JSON object on stdout with --json)."""
    if getattr(args, "json", False):
        out = {"error": e.kind, "message": str(e)}
        if isinstance(e, L.DeviceError):
            out["err"] = e.err
        print(json.dumps(out))
    print("pumpctl: %s" % e, file=sys.stderr)
    return e.exit_code


# --- pumpctl ports --------------------------------------------------------------------

def ports_setup(p):
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each board's hello (default 1)")
    p.add_argument("--json", action="store_true", default=argparse_suppress(), help="machine-readable output")


def ports(args):
    try:
        found = L.candidates()
    except L.LinkError as e:
        return _fail(args, e)
    rows = []
    for f in found:
        hello, why = L.probe(f["port"], timeout=args.timeout)
        row = dict(f)
        if hello:
            row.update(pump=True, fw=hello.get("fw"), proto=hello.get("proto"), board=hello.get("board"),
                       mcu=hello.get("mcu"), clock_confirmed=hello.get("clock_confirmed"))
        else:
            row.update(pump=False, error=why)
        rows.append(row)
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no boards found: plug in a board (USB) or start a virtual one with `pumpctl sim serve`")
        return 0
    for r in rows:
        if r["pump"]:
            print("%-14s %-7s dosekit fw %s, protocol %s  %s" % (r["port"], r["kind"], r["fw"], r["proto"], r["board"]))
        else:
            print("%-14s %-7s not identified  %s" % (r["port"], r["kind"], r["desc"]))
            print("%14s         %s" % ("", r["error"].split("\n")[0]))
    return 0


# --- pumpctl status -------------------------------------------------------------------

def _days(s):
    return "-" if s is None else "%.1f days" % (s / 86400.0)


def format_status(st, port):
    alarms = st.get("alarms") or []
    lines = [
        "pump on %s" % port,
        "  state      %s (%s)" % (st.get("state"), st.get("mode")),
        "  rate       %.3f uL/h" % ((st.get("rate_nl_h") or 0) / 1000.0),
        "  reservoir  %.3f mL at %s ng/mL; to low %s, to empty %s" % (
            (st.get("volume_nl") or 0) / 1e6, st.get("conc_ng_ml"), _days(st.get("s_to_low")),
            _days(st.get("s_to_empty"))),
        "  alarms     %s" % (", ".join(L.alarm_name(c) for c in alarms) if alarms else "none"),
        "  clock      %s" % ("set" if st.get("clock_confirmed") else "not confirmed"),
    ]
    if st.get("bolus"):
        lines.append("  bolus      %s" % json.dumps(st["bolus"]))
    if st.get("out_dropped"):
        lines.append("  dropped    %d output lines (host did not read)" % st["out_dropped"])
    return "\n".join(lines)


def status(args):
    try:
        with L.Link.open(args.port, timeout=args.timeout) as link:
            st = link.request("status")
            port = link.port
    except L.LinkError as e:
        return _fail(args, e)
    if getattr(args, "json", False):
        print(json.dumps(st))
    else:
        print(format_status(st, port))
    return 0


register("ports", "boards found (USB and virtual), with firmware/protocol version where a pump answers",
         ports_setup, ports)
register("status", "therapy state, rate, reservoir and active alarms of a pump",
         port_args, status)
