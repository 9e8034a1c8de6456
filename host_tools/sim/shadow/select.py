# Shadows the VM's built-in `select` on the virtual board (docs/usb-link.md).
#
# poll(timeout) never blocks in virtual time: it checks the real stdin (or any
# registered stream) without waiting and, when nothing is ready, moves the
# virtual clock (vboard.clock.CLOCK) on by the timeout, firing the dose timers on
# the way. In real-time mode (SPEED > 0) it sleeps real time, timeout / SPEED,
# and moves the virtual clock with the real one times SPEED, so a user sees a
# live pump. vmboot.py sets SPEED from `pumpctl sim serve --speed/--virtual`.
import sys

import micropython

from vboard.clock import CLOCK


def _builtin(name):
    """The VM's own module `name`, past this shadow and the shadow `time`."""
    mods = sys.modules
    saved = mods.pop(name, None)
    path = sys.path[:]
    sys.path[:] = []
    try:
        return __import__(name)
    finally:
        sys.path[:] = path
        if saved is not None:
            mods[name] = saved


_real = _builtin("select")
_rt = _builtin("time")  # real time, for the real-time mode
POLLIN = _real.POLLIN
POLLOUT = _real.POLLOUT
POLLERR = _real.POLLERR
POLLHUP = _real.POLLHUP

SPEED = 0.0  # 0: virtual time (no real sleeping); > 0: real time times SPEED
_SLACK_US = 100_000  # real time beyond a requested sleep that is caught up (more: the VM was stopped)
_anchor = [None, 0]  # real ticks_us, virtual now_us at the last re-anchoring


def unlock_heap():
    """Undo every heap_lock(): Ctrl-C (KeyboardInterrupt) can land inside a simulated
    hard-IRQ callback, which runs with the heap locked; on a board it would be raised
    after the IRQ. heap_unlock() returns the depth left; small ints do not allocate."""
    micropython.heap_lock()
    depth = micropython.heap_unlock()
    while depth > 0:
        micropython.heap_unlock()
        depth -= 1


def _tick(us):
    try:
        CLOCK.advance(us)
    except KeyboardInterrupt:
        unlock_heap()
        raise


def _advance(timeout_ms, ready):
    """Move the virtual clock after a real wait (real-time mode)."""
    now_r = _rt.ticks_us()
    if _anchor[0] is None:
        _anchor[0] = now_r
        _anchor[1] = CLOCK.now_us
    target = _anchor[1] + int(_rt.ticks_diff(now_r, _anchor[0]) * SPEED)
    step = target - CLOCK.now_us
    limit = (timeout_ms * 1000 if timeout_ms >= 0 else step) + int(_SLACK_US * SPEED)
    if step > limit or step < 0:  # the VM was stopped (REPL, debugger): start again from here
        step = 0 if ready else (timeout_ms * 1000 if timeout_ms >= 0 else 0)
        _tick(step)
        _anchor[0] = now_r
        _anchor[1] = CLOCK.now_us
        return
    _tick(step)


class _Poll:
    def __init__(self):
        self._p = _real.poll()

    def register(self, obj, mask=POLLIN | POLLOUT):
        self._p.register(obj, mask)

    def unregister(self, obj):
        self._p.unregister(obj)

    def modify(self, obj, mask):
        self._p.modify(obj, mask)

    def poll(self, timeout=-1):
        if SPEED > 0:
            wait = -1 if timeout < 0 else int(timeout / SPEED)
            r = self._p.poll(wait)
            _advance(timeout, bool(r))
            return r
        r = self._p.poll(0)
        if r or timeout == 0:
            return r
        if timeout < 0:  # nothing to do until input: wait for it in real time
            return self._p.poll(-1)
        _tick(timeout * 1000)
        return r

    def ipoll(self, timeout=-1, flags=0):
        return iter(self.poll(timeout))


def poll():
    return _Poll()


if hasattr(_real, "select"):  # real time only: the firmware waits with poll()
    select = _real.select
