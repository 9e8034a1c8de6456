"""CPython stand-in for the `micropython` module, so device code imports unchanged.

Only what device code uses on every port; tests that need the real behaviour
(heap_lock, mem_alloc) run on the VM.
"""


def const(x):
    return x


_pending = []


def schedule(fn, arg):
    """Queued like the VM's: the simulated clock runs them after each timer callback."""
    if len(_pending) >= 8:
        raise RuntimeError("schedule queue full")
    _pending.append((fn, arg))


def run_pending():
    while _pending:
        fn, arg = _pending.pop(0)
        fn(arg)


def heap_lock():
    return 0


def heap_unlock():
    return 0


def alloc_emergency_exception_buf(n):
    pass


def kbd_intr(c):
    pass


def native(f):
    return f


def viper(f):
    return f
