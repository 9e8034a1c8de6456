"""The serial link to a pump: JSON-lines requests and replies (docs/protocol.md).

    with Link.open(port) as link:       # opens, resyncs, `hello` (sets the pump's clock)
        st = link.request("status")     # the `ok` object; DeviceError on an `err` reply
        link.events                     # `ev` lines seen while waiting

Port selection (`find_port`): an explicit `--port`, else the single board among pyserial's USB
serial ports and the virtual-board registry (`pumpctl sim serve`, docs/usb-link.md); none or
several is an error that says what to do. Every failure is a LinkError with a message for the
user and an exit code (`EXIT_*`).
"""
import importlib.util
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEVICE_PUMP = ROOT / "device" / "pump"

MPY_EPOCH = 946684800  # 2000-01-01T00:00:00Z in Unix seconds: the device's wall-clock epoch
DEFAULT_TIMEOUT = 3.0  # seconds to wait for one reply

EXIT_PORT = 3      # no port, several ports, cannot open, busy, port lost
EXIT_NOT_PUMP = 4  # no protocol answer: not running the pump firmware, timeout, protocol mismatch
EXIT_DEVICE = 5    # the pump answered with an error (nothing changed)


def load_file(path, name):
    """A device-side module loaded by path on CPython, under a private name (no `pump` package)."""
    spec = importlib.util.spec_from_file_location(name, str(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load(name):
    """A data-only device module (schema, events) loaded from device/pump on CPython."""
    return load_file(DEVICE_PUMP / (name + ".py"), "_dosekit_" + name)


schema = _load("schema")
events = _load("events")


class LinkError(Exception):
    """A failure to talk to a pump; str() is the message for the user."""

    def __init__(self, msg, exit_code=EXIT_PORT, kind="link"):
        super().__init__(msg)
        self.exit_code = exit_code
        self.kind = kind


class DeviceError(LinkError):
    """The pump answered {"err": code, "msg": ...}: it refused or rejected the request."""

    def __init__(self, cmd, err, msg):
        super().__init__("the pump rejected %s (%s): %s" % (cmd, err, msg), EXIT_DEVICE, "device")
        self.err = err
        self.device_msg = msg


def wall_now():
    """The host's time as device wall seconds (since 2000-01-01 UTC)."""
    return int(time.time()) - MPY_EPOCH


def alarm_name(code):
    try:
        return events.name(code)
    except (ValueError, TypeError):
        return "ALARM_%s" % code


# --- finding boards -----------------------------------------------------------------

def _serial():
    try:
        import serial  # noqa: F401
        import serial.tools.list_ports  # noqa: F401
    except ImportError:  # pragma: no cover - pyserial is in requirements.txt
        raise LinkError("pyserial is not installed: run `make` (or pip install pyserial) in this checkout")
    return serial


def virtual_boards():
    """Served virtual boards from the registry (stale entries are pruned by list_boards)."""
    try:
        from sim import supervisor
    except ImportError:
        return []
    return supervisor.list_boards()


def candidates():
    """Boards that could be pumps: [{"port", "kind": "usb"|"virtual", "desc"}]."""
    serial = _serial()
    found = []
    for p in sorted(serial.tools.list_ports.comports(), key=lambda p: p.device):
        if p.vid is None:  # built-in UARTs (/dev/ttyS*) are never a USB board
            continue
        desc = p.description if p.description and p.description != "n/a" else (p.product or "")
        found.append({"port": p.device, "kind": "usb",
                      "desc": "%s (%04x:%04x)" % (desc, p.vid, p.pid or 0)})
    for b in virtual_boards():
        found.append({"port": b["port"], "kind": "virtual",
                      "desc": "virtual board '%s' (pumpctl sim serve, pid %s)" % (b.get("name"), b.get("pid"))})
    return found


def find_port(port=None):
    """The port to use: `port` if given, else the one board found; LinkError otherwise."""
    if port:
        return port
    found = candidates()
    if not found:
        raise LinkError("no board found: plug in a board (USB), or start a virtual one with "
                        "`pumpctl sim serve`, or name the port with --port")
    if len(found) > 1:
        raise LinkError("%d boards found; choose one with --port:\n%s" % (
            len(found), "\n".join("  %s  %s" % (f["port"], f["desc"]) for f in found)))
    return found[0]["port"]


# --- the link -------------------------------------------------------------------------

class Link:
    """One open port speaking the pump protocol."""

    def __init__(self, ser, port, timeout=DEFAULT_TIMEOUT):
        self.ser = ser
        self.port = port
        self.timeout = timeout
        self.events = []   # every {"ev": ...} line seen, in order
        self.noise = []    # lines that were not protocol JSON (a REPL, other firmware)
        self.hello = None  # the hello reply once connected
        self._buf = b""
        self._next_id = int(time.time() * 1000) % 1_000_000 + 1

    @classmethod
    def open(cls, port=None, timeout=DEFAULT_TIMEOUT, set_clock=True):
        """Open `port` (or the one board found), resync and `hello`; returns a Link."""
        port = find_port(port)
        serial = _serial()
        try:
            ser = serial.serial_for_url(port, baudrate=115200, timeout=0.05, write_timeout=timeout,
                                        exclusive=True)
        except serial.SerialException as e:
            text = str(e)
            if "lock" in text.lower() or "busy" in text.lower():
                raise LinkError("port %s is busy: another program (mpremote, a terminal, another pumpctl) "
                                "has it open; close that and try again" % port) from None
            raise LinkError("cannot open %s: %s\n  `pumpctl ports` lists the boards found" % (port, text)) from None
        link = cls(ser, port, timeout)
        try:
            link.connect(set_clock=set_clock)
        except BaseException:
            link.close()
            raise
        return link

    def connect(self, set_clock=True):
        """Drop stale input, resync with a blank line, `hello`, check the protocol version."""
        try:
            self.ser.reset_input_buffer()
        except Exception:
            pass
        self._write(b"\n")
        args = {"wall": wall_now()} if set_clock else {}
        try:
            self.hello = self.request("hello", args)
        except LinkError as e:
            if e.kind != "timeout":
                raise
            if self.noise:
                seen = " | ".join(n.strip()[:60] for n in self.noise[-3:])
                raise LinkError(
                    "%s answered, but not in the pump protocol (saw: %s): it is not running the dosekit pump "
                    "firmware, or it is at the REPL (after mpremote). Start the pump with "
                    "`mpremote connect %s reset`, or deploy it (pumpctl flash, issue 4)"
                    % (self.port, seen, self.port), EXIT_NOT_PUMP, "not_pump") from None
            raise LinkError(
                "no answer from %s within %.1f s: is it a dosekit pump running its firmware? "
                "Check the port (`pumpctl ports`), reset the board (`mpremote connect %s reset`), "
                "or raise --timeout" % (self.port, self.timeout, self.port), EXIT_NOT_PUMP, "not_pump") from None
        proto = self.hello.get("proto") if isinstance(self.hello, dict) else None
        if proto != schema.PROTOCOL:
            raise LinkError("%s speaks pump protocol %r, this pumpctl speaks %d: update the firmware "
                            "(pumpctl flash) or pumpctl so they match" % (self.port, proto, schema.PROTOCOL),
                            EXIT_NOT_PUMP, "proto")
        return self.hello

    def request(self, cmd, args=None, timeout=None):
        """Send {"id", "cmd", "args"} and return the reply's `ok`; events seen meanwhile go to .events."""
        rid = self._next_id
        self._next_id = self._next_id % schema.MAX_ID + 1
        msg = {"id": rid, "cmd": cmd}
        if args:
            msg["args"] = args
        line = json.dumps(msg, separators=(",", ":")).encode()
        if len(line) > schema.MAX_LINE:
            raise ValueError("%s request is %d bytes, the pump takes at most %d" % (cmd, len(line), schema.MAX_LINE))
        self._write(line + b"\n")
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise LinkError("no reply to %s from %s within %.1f s: the pump may be busy or gone; "
                                "try again, or raise --timeout" % (cmd, self.port, self.timeout if timeout is None
                                                                   else timeout), EXIT_NOT_PUMP, "timeout")
            raw = self._readline(left)
            if raw is None:
                continue
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                self.noise.append(text)
                continue
            if not isinstance(obj, dict):
                self.noise.append(text)
                continue
            if "ev" in obj:
                self.events.append(obj)
                continue
            if obj.get("id") != rid:
                continue  # a stale reply to an earlier request, or {"id": null} to our resync noise
            if "err" in obj:
                raise DeviceError(cmd, obj.get("err"), obj.get("msg", ""))
            if "ok" in obj:
                return obj["ok"]
            self.noise.append(text)

    def _write(self, data):
        serial = _serial()
        try:
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as e:
            raise LinkError("lost %s while writing (%s): was the board unplugged or reset?" % (self.port, e)) from None

    def _readline(self, left):
        """One line (bytes, without the newline) or None if none completed in `left` seconds."""
        serial = _serial()
        end = time.monotonic() + left
        while b"\n" not in self._buf:
            if time.monotonic() >= end:
                return None
            try:
                chunk = self.ser.read(max(1, self.ser.in_waiting))
            except (serial.SerialException, OSError) as e:
                raise LinkError("lost %s while reading (%s): was the board unplugged or reset?"
                                % (self.port, e)) from None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def close(self):
        try:
            self.ser.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def probe(port, timeout=1.0):
    """`hello` (without setting the clock) on one port: (hello dict or None, why not)."""
    try:
        with Link.open(port, timeout=timeout, set_clock=False) as link:
            return link.hello, None
    except LinkError as e:
        return None, str(e)
