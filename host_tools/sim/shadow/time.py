# Shadows the VM's built-in `time`: virtual time that wraps like a board's.
from vboard.vtime import *  # noqa: F401,F403
from vboard.vtime import CLOCK


def gmtime(secs=None):
    import utime

    return utime.gmtime(secs if secs is not None else CLOCK.time())


localtime = gmtime
