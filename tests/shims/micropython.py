"""CPython stand-in for the `micropython` module, so device code imports unchanged.

Only what device code uses on every port; tests that need the real behaviour
(heap_lock, mem_alloc) run on the VM.
"""


def const(x):
    return x


def schedule(fn, arg):
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
