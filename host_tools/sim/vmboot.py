"""The virtual board's boot, run inside the MicroPython VM by the supervisor
(`micropython -i vmboot.py`; docs/usb-link.md).

It does what a board's firmware does between reset and the REPL:
1. import the simulated hardware (`machine`, `time`, `select` from shadow/ and
   vboard/): the board's "firmware", which stays importable from sys.modules
   once the host filesystem is gone;
2. mount the board's LittleFS image at `/` in place of the host filesystem
   (formatting a blank image), after copying a deployment onto it if asked;
3. run `boot.py` always and `main.py` unless the board soft-reset from the raw
   REPL, in the REPL's namespace, as MicroPython's pyexec does. The `-i` REPL
   follows.

Settings come from the environment (set by supervisor.py):
DOSEKIT_IMAGE      host path of the flash image (required)
DOSEKIT_DEPLOY     host path of a manifest, lines "host-source<TAB>board-path"
DOSEKIT_MAIN       "0": skip main.py (soft reset in the raw REPL)
DOSEKIT_SPEED      "0": virtual time; > 0: real time times this factor
DOSEKIT_RESET      machine.reset_cause() value for this boot
"""
import gc
import os
import sys

import machine  # noqa: F401  (shadow: the simulated board)
import time  # noqa: F401  (shadow: virtual time)
import select  # shadow: poll() moves virtual time
import vboard.clock  # noqa: F401
import vboard.machine
import vboard.vtime  # noqa: F401
from vboard import lfsimage

# The supervisor strips these markers from the output (supervisor.py).
UP_MARK = "\x1b_dk:up\x1b\\"
REPL_MARK = "\x1b_dk:repl\x1b\\"


def _deploy(manifest, point):
    with open(manifest) as f:
        lines = f.read().split("\n")
    buf = bytearray(512)
    for line in lines:
        if not line:
            continue
        src, dest = line.split("\t")
        path = point
        for part in dest.split("/")[:-1]:  # make parent directories
            path += "/" + part
            try:
                os.mkdir(path)
            except OSError:
                pass
        with open(src, "rb") as a, open(point + "/" + dest, "wb") as b:
            while True:
                n = a.readinto(buf)
                if not n:
                    break
                b.write(buf if n == len(buf) else memoryview(buf)[:n])


def _mount():
    image = os.getenv("DOSEKIT_IMAGE")
    deploy = os.getenv("DOSEKIT_DEPLOY")
    if deploy:
        dev = lfsimage.LfsImage(image)
        lfsimage.mount(dev, "/.deploy")
        _deploy(deploy, "/.deploy")
        os.umount("/.deploy")
        dev.close()
    dev = lfsimage.LfsImage(image)  # opened while the host filesystem is still there
    os.umount("/")  # the host filesystem: from here on only the board's
    lfsimage.mount(dev, "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]


def _run(name, g):
    try:
        with open(name) as f:
            src = f.read()
    except OSError:
        return
    try:
        exec(src, g)
    except SystemExit:
        raise  # sys.exit(): soft reset; machine.reset(): hard reset (supervisor.py)
    except BaseException as e:  # noqa: B036  as pyexec: print it, go on to the REPL
        sys.print_exception(e)


def _at_exit(g):
    """The VM is exiting for a reset: as a board's soft reset does (gc_sweep_all),
    run the finalisers of every file object, so what was written is committed."""

    import gc

    umount = os.umount

    def run():
        try:  # nothing may escape: an exception here is a fatal error in the unix VM
            g.clear()  # also this module's globals: only locals from here on
            gc.collect()
            umount("/")
        except BaseException:  # noqa: B036
            pass

    return run


def _boot(g):
    speed = os.getenv("DOSEKIT_SPEED")
    select.SPEED = float(speed) if speed else 0.0
    cause = os.getenv("DOSEKIT_RESET")
    if cause:
        vboard.machine._reset_cause[0] = int(cause)
    run_main = os.getenv("DOSEKIT_MAIN") != "0"
    _mount()
    if hasattr(sys, "atexit"):
        sys.atexit(_at_exit(g))
    sys.stdout.write(UP_MARK)
    _run("boot.py", g)
    if run_main:
        _run("main.py", g)
    select.unlock_heap()  # a Ctrl-C inside a simulated hard IRQ left it locked
    gc.collect()
    sys.stdout.write(REPL_MARK)


_g = globals()
_boot(_g)
for _name in ("_deploy", "_mount", "_run", "_boot", "_at_exit", "lfsimage", "UP_MARK", "REPL_MARK", "_name"):
    del _g[_name]
del _g
