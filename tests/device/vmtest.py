"""Helpers shared by device tests on CPython (pytest) and on the MicroPython VM."""
import sys

ON_VM = sys.implementation.name == "micropython"


class SkipTest(Exception):
    pass


def require_vm(why="needs the MicroPython VM"):
    """Skip on CPython: the test measures something only the real VM has."""
    if not ON_VM:
        import pytest

        pytest.skip(why)


def raises(exc_type, fn, *args, **kw):
    """Call fn and return the exception it must raise (pytest.raises is CPython-only)."""
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised by %s" % (exc_type.__name__, fn))


def tmpdir(tag="t"):
    """A fresh, empty directory on the host filesystem (the VM's default VFS is the host's)."""
    if not ON_VM:
        import tempfile

        return tempfile.mkdtemp(prefix="dosekit-%s-" % tag)
    import os

    name = "/tmp/dosekit-%s-%s" % (tag, "".join("%02x" % b for b in os.urandom(6)))
    os.mkdir(name)
    return name
