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


def stdin_waiter():
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)

    def wait(timeout_ms):
        if poller.poll(timeout_ms):
            return sys.stdin.read(1)  # the line protocol arrives with the virtual-board issue
        return None

    return wait


def motor_off():
    """Last resort when even the controller failed: de-energise the driver directly."""
    m = board.MOTOR
    if m.get("enable") is not None:
        machine.Pin(m["enable"], machine.Pin.OUT, value=1 if m.get("enable_active_low", True) else 0)
    machine.Pin(m["step"], machine.Pin.OUT, value=0)


try:
    app.run(board, machine, time, stdin_waiter())
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
