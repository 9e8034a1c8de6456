"""Board entry point: the pump application on whatever `board.py` describes.

Ctrl-C from the host (mpremote taking over for deployment) stops the pump
safely: motor off, "therapy stopped by host" alarm, logged, then the REPL.
"""
import sys
import time

import machine
import select

import board  # pyright: ignore[reportMissingImports]  (boards/<name>.py, copied as board.py)
from pump import app
from pump.protocol import Protocol
from pump.writer import Writer


_CHUNK = 64  # bytes read per wait; a USB packet


def _ready(poller):
    for _ in poller.ipoll(0):
        return True
    return False


def stdin_waiter(writer):
    """wait(timeout_ms) for the main loop: sleeps until input, the timeout, or (while
    output is queued) room on stdout; drains the writer; returns up to _CHUNK input
    bytes or None. Never blocks: bytes are read one at a time while poll says so."""
    # binary: a text-mode read(1) would wait for the rest of a UTF-8 sequence
    readinto = getattr(getattr(sys.stdin, "buffer", sys.stdin), "readinto")
    rd = select.poll()
    rd.register(sys.stdin, select.POLLIN)
    rw = select.poll()
    rw.register(sys.stdin, select.POLLIN)
    rw.register(sys.stdout, select.POLLOUT)
    one = bytearray(1)
    buf = bytearray(_CHUNK)

    def wait(timeout_ms):
        (rw if writer.drain() else rd).poll(timeout_ms)
        writer.drain()
        n = 0
        while n < _CHUNK and _ready(rd) and readinto(one) == 1:
            buf[n] = one[0]
            n += 1
        return bytes(buf[:n]) if n else None

    return wait


def stdout_writer():
    """The non-blocking output writer on sys.stdout (POLLOUT before every chunk)."""
    out = getattr(sys.stdout, "buffer", sys.stdout)
    wp = select.poll()
    wp.register(sys.stdout, select.POLLOUT)
    return Writer(out.write, lambda: _ready(wp))


def motor_off():
    """Last resort when even the controller failed: de-energise the driver directly."""
    m = board.MOTOR
    if m.get("enable") is not None:
        machine.Pin(m["enable"], machine.Pin.OUT, value=1 if m.get("enable_active_low", True) else 0)
    machine.Pin(m["step"], machine.Pin.OUT, value=0)


_writer = stdout_writer()
_proto = Protocol(_writer)
try:
    app.run(board, machine, time, stdin_waiter(_writer), _proto.on_input, on_pass=_proto.on_pass)
except KeyboardInterrupt:
    motor_off()
    print("pump stopped by host (Ctrl-C); REPL follows")
except Exception as e:
    motor_off()
    sys.print_exception(e)
    # No watchdog feeding from here on: the board resets, and boot resumes
    # therapy only if the self-test finds a valid persisted state.
    while True:
        time.sleep_ms(1000)
