"""The whole firmware (pump.app) on the simulated board, driven in virtual time."""
from vboard import machine, vtime
from vboard.clock import CLOCK, TICKS_PERIOD
from boards import virtual as board
from pump import app
from vmtest import tmpdir

DAY_MS = 86_400_000
WALL_2026 = 820_000_000  # s since 2000-01-01: late 2025


def _wait(ms):
    CLOCK.advance(ms * 1000)
    return None


class PumpRig:
    def __init__(self, root=None, start_us=None):
        CLOCK.reset_hardware()
        CLOCK.now_us = (TICKS_PERIOD - 2_000_000) if start_us is None else start_us
        machine.PORT["hard_timer"] = True
        self.root = root or tmpdir("pump")
        self.loop = app.start(board, machine, vtime, _wait, root=self.root)
        self.ctl = self.loop.ctl

    def now(self):
        return self.loop.now()

    def run(self, ms):
        self.loop.run(self.loop.uptime.ms + ms)

    def reboot(self):
        """Power loss and reset: the filesystem survives, RAM does not."""
        self.ctl.engine.stop()
        return PumpRig(self.root, CLOCK.now_us)

    def ready(self, volume_ml=20, conc_mcg_ml=500):
        c = self.ctl
        c.set_clock(WALL_2026, self.now())
        c.refill(volume_ml * 1_000_000, conc_mcg_ml * 1000, self.now())
        return c

    def program(self, d):
        c = self.ctl
        cid, _summary = c.stage("program", d, self.now())
        return c.confirm(cid, self.now())

    def counted(self):
        e = self.ctl.engine
        return e.fwd - e.rev

    def state_files(self):
        """Bytes of every persisted file: to prove a refusal changed nothing."""
        import os

        out = {}
        for base in (self.root, self.root + "/log"):
            for name in sorted(os.listdir(base)):
                p = base + "/" + name
                try:
                    with open(p, "rb") as f:
                        out[p] = f.read()
                except OSError:
                    pass
        return out
