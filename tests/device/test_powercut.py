"""The power-cut sweep: cut power at every single flash program and erase.

For each scenario (a config update, a counters checkpoint, log appends) a base
image is made once (LittleFS, 4 KB blocks, progsize 256 as on the rp2, on a
file-backed flashsim). Then for k = 1, 2, ...: copy the base, mount it with the
k-th program/erase cut (and the image frozen from there on), run the scenario
until the cut, copy the frozen image, mount a fresh os.VfsLfs2 on the copy (a
board powering up) and check what survived. The sweep ends at the first k the
scenario completes without reaching. Each scenario runs twice: a clean cut (the
k-th operation does not happen) and a torn one (only its first half does).

A step that returns after the cut was not acknowledged: power was already gone.
Needs the VM's os.VfsLfs2; skipped on CPython.
"""
import gc
import os

import flashsim
from vmtest import require_vm

from pump.log import Event, EventLog
from pump.store import Store, StoreError

BLOCKS = 32  # 128 KB image
SEGMENTS = 3
PER_SEGMENT = 40  # 1280-byte segments: beyond LittleFS's inline limit, so appends copy blocks
BASE_EVENTS = 70  # segments 1 and 41 exist; the sweep starts segment 81, then 121 (prunes 1)
FILL_NL = 20000000  # 20 mL reservoir
CHUNK_NL = 250000  # one reservation


def config(i):
    return {"version": i, "rate_nl_h": 25000 + 500 * i, "conc_ng_ml": 500000,
            "mode": "continuous", "pattern": [i] * (150 * (i % 4))}  # 0.1-1.8 KB: inline and not


def counters(delivered):
    return {"delivered_nl": delivered, "reservoir_nl": FILL_NL - delivered}


def event_fields(seq):
    return (seq * 10, 800000000 + seq, 100 + seq % 50, seq, -seq, seq * 1000)


def expected_event(seq):
    up, wall, code, a0, a1, a2 = event_fields(seq)
    return Event(seq, up, wall, code, a0, a1, a2)


def append_event(log):
    seq = log.next_seq
    got = log.append(*event_fields(seq))
    assert got == seq, (got, seq)
    return seq


def _ms():
    try:
        import utime  # the VM's own clock; `time` is the simulated board's

        return utime.ticks_ms()
    except ImportError:
        return 0


class Scenario:
    """Base: every scenario starts from the same files and checks the others stay intact."""

    steps = 0
    store_cls = Store

    def prepare(self, root):
        s = Store(root + "/data")
        s.save("config", config(0))
        s.save("counters", counters(0))
        log = EventLog(root + "/log", SEGMENTS, PER_SEGMENT)
        for _ in range(BASE_EVENTS):
            append_event(log)

    def begin(self, root):
        self.store = self.store_cls(root + "/data")

    def check_others(self, root, config_changes=False, counters_change=False, log_changes=False):
        s = Store(root + "/data")
        status = s.selftest(["config", "counters"])
        assert status == {"config": "ok", "counters": "ok"}, status
        if not config_changes:
            assert s.load("config") == config(0)
        if not counters_change:
            assert s.load("counters") == counters(0)
        if not log_changes:
            log = EventLog(root + "/log", SEGMENTS, PER_SEGMENT)
            assert [e.seq for e in log.records()] == list(range(1, BASE_EVENTS + 1))
            assert log.dropped == 0


class ConfigUpdate(Scenario):
    """(a) config saved 12 times: old or new after every cut, never missing or corrupt."""

    steps = 12

    def begin(self, root):
        Scenario.begin(self, root)
        self.acked = 0

    def step(self, i):
        self.store.save("config", config(i + 1))

    def ack(self, i):
        self.acked = i + 1

    def check(self, root):
        s = Store(root + "/data")
        got = s.load("config")  # Missing / Corrupt here is a violation
        assert got in (config(self.acked), config(self.acked + 1)), (got["version"], self.acked)
        self.check_others(root, config_changes=True)
        s.save("config", config(99))  # the store still works after the cut
        assert Store(root + "/data").load("config") == config(99)


class RemoveThenWriteStore(Store):
    """A deliberately wrong save: delete the old record, then write the new one.
    (Overwriting in place would survive: LittleFS commits a file only at close.)"""

    def save(self, name, record, schema=1):
        from pump.store import encode

        self.remove(name)
        with open(self.path(name), "wb") as f:
            f.write(encode(record, schema))


class RemoveThenWriteConfigUpdate(ConfigUpdate):
    store_cls = RemoveThenWriteStore


class CountersCheckpoint(Scenario):
    """(b) the controller's reservation scheme: persist delivered = actual + reservation,
    and only after the save returns dose into the reservation. After any cut the
    persisted delivered volume is >= what was really delivered, so the reservoir is
    never over-estimated."""

    steps = 12
    dose_first = False  # True: the wrong order (dose, then save), for the negative test

    def begin(self, root):
        Scenario.begin(self, root)
        self.real = 0  # nL really delivered at this moment (the truth, in RAM)
        self.acked = 0  # the last persisted reservation whose save returned
        self.pending = 0

    def step(self, i):
        if self.dose_first:
            self.real += CHUNK_NL
            self.pending = self.real
        else:
            self.pending = self.real + CHUNK_NL
        self.store.save("counters", counters(self.pending))

    def ack(self, i):
        self.acked = self.pending
        self.real = self.pending  # worst case: the pump uses the whole reservation

    def check(self, root):
        got = Store(root + "/data").load("counters")
        assert got["delivered_nl"] + got["reservoir_nl"] == FILL_NL, got
        assert got["delivered_nl"] in (self.acked, self.pending), (got, self.acked, self.pending)
        assert got["delivered_nl"] >= self.real, ("under-reports delivery", got, self.real)
        self.check_others(root, counters_change=True)


class DoseBeforeReserving(CountersCheckpoint):
    dose_first = True


class LogAppend(Scenario):
    """(c) 52 appends across two segment rotations and one prune: no acknowledged
    event lost, nothing invented, torn data cut off, appends continue after a cut."""

    steps = 52

    def begin(self, root):
        Scenario.begin(self, root)
        self.log = EventLog(root + "/log", SEGMENTS, PER_SEGMENT)
        self.acked = BASE_EVENTS

    def step(self, i):
        append_event(self.log)

    def ack(self, i):
        self.acked = BASE_EVENTS + i + 1

    def check(self, root):
        log = EventLog(root + "/log", SEGMENTS, PER_SEGMENT)
        evs = list(log.records())
        seqs = [e.seq for e in evs]
        for e in evs:
            assert e == expected_event(e.seq), e  # nothing garbled or invented
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        assert seqs[-1] <= self.acked + 1, (seqs[-1], self.acked)  # only the one in flight
        keep_from = max(1, self.acked - (SEGMENTS - 1) * PER_SEGMENT + 1)
        for seq in range(keep_from, self.acked + 1):
            assert seq in seqs, ("acknowledged event lost", seq, self.acked)
        assert log.selftest() == "ok"
        new = append_event(log)  # the log still appends, and the sequence goes on
        assert new > self.acked and new > seqs[-1]
        assert log.read(limit=1, newest_first=True) == [expected_event(new)]
        self.check_others(root, log_changes=True)


class FirstSave(ConfigUpdate):
    """(a') the very first config save, then one more: before the first save is
    acknowledged the record may be missing (never corrupt); after it, old or new."""

    steps = 2

    def prepare(self, root):
        Scenario.prepare(self, root)
        Store(root + "/data").remove("config")

    def check(self, root):
        s = Store(root + "/data")
        if self.acked == 0:
            status = s.selftest(["config"])["config"]
            assert status in ("missing", "ok"), status
            if status == "missing":
                return
        got = s.load("config")
        assert got in (config(self.acked), config(self.acked + 1)), (got["version"], self.acked)


class LogRepair(LogAppend):
    """(c') a torn tail left by a non-atomic filesystem is cut off at open (temp copy +
    rename), with power cut during the repair itself and the appends after it."""

    steps = 6

    def prepare(self, root):
        Scenario.prepare(self, root)
        d = root + "/log"
        newest = sorted(n for n in os.listdir(d) if n.endswith(".ev"))[-1]
        with open(d + "/" + newest, "ab") as f:
            f.write(b"\x5a" * 21)

    def begin(self, root):
        Scenario.begin(self, root)
        self.root = root
        self.acked = BASE_EVENTS

    def step(self, i):
        if i == 0:
            self.log = EventLog(self.root + "/log", SEGMENTS, PER_SEGMENT)
        else:
            append_event(self.log)

    def ack(self, i):
        self.acked = BASE_EVENTS + i

    def check(self, root):
        LogAppend.check(self, root)
        assert EventLog(root + "/log", SEGMENTS, PER_SEGMENT).dropped == 0


def sweep(scenario, tear=False):
    """Run the sweep; returns (cut points covered, violations as (k, message), the
    uncut run's (programs, erases))."""
    point = "/" + flashsim.unique("pc")
    tmp = flashsim.tmpdir() + "/" + flashsim.unique("dosekit_pc_")
    base, work, chk = tmp + "_base.img", tmp + "_work.img", tmp + "_chk.img"
    violations = []
    covered = 0
    try:
        dev = flashsim.FlashSim.blank(base, BLOCKS)
        flashsim.mkfs(dev)
        flashsim.mount(dev, point)
        scenario.prepare(point)
        os.umount(point)
        dev.close()
        k = 1
        while True:
            flashsim.copy_image(base, work)
            dev = flashsim.FlashSim(work, cut_at=k, tear=tear)
            flashsim.mount(dev, point)
            try:
                scenario.begin(point)
                for i in range(scenario.steps):
                    try:
                        scenario.step(i)
                    except (OSError, StoreError):
                        if not dev.frozen:
                            raise  # a failure with power still on is a real bug
                    if dev.frozen:
                        break  # the step did not return before the cut: not acknowledged
                    scenario.ack(i)
            finally:
                scenario.store = scenario.log = None
                if hasattr(scenario, "root"):
                    scenario.root = None
                gc.collect()
                os.umount(point)
                dev.close()
            if not dev.frozen:
                ops = (dev.programs, dev.erases)
                break  # the scenario completed before the k-th operation: all covered
            flashsim.copy_image(work, chk)
            dev = flashsim.FlashSim(chk)
            flashsim.mount(dev, point)
            try:
                scenario.check(point)
            except (AssertionError, StoreError) as e:
                violations.append((k, repr(e)))
            finally:
                os.umount(point)
                dev.close()
            covered += 1
            k += 1
    finally:
        for p in (base, work, chk):
            flashsim.remove(p)
    return covered, violations, ops


def run_both(scenario, label):
    total = 0
    for tear in (False, True):
        t0 = _ms()
        covered, violations, ops = sweep(scenario, tear)
        print("powercut %-8s %-5s: %4d cut points (%d programs + %d erases), %d violations, %d ms"
              % (label, "torn" if tear else "clean", covered, ops[0], ops[1], len(violations),
                 _ms() - t0))
        for v in violations[:5]:
            print("    cut", v[0], v[1])
        assert covered > 0, "the sweep covered no cut point"
        assert covered == ops[0] + ops[1]  # every program and erase was a cut point
        assert not violations, violations[:3]
    return ops


def test_config_is_old_or_new_after_a_cut_at_every_block_write_and_erase():
    require_vm("needs os.VfsLfs2 (the real LittleFS driver) in the MicroPython VM")
    assert run_both(ConfigUpdate(), "config")[1] > 0  # the sweep includes erases


def test_a_first_save_leaves_the_record_missing_or_new_never_corrupt():
    require_vm("needs os.VfsLfs2 (the real LittleFS driver) in the MicroPython VM")
    run_both(FirstSave(), "1st-save")


def test_counters_never_under_report_delivery_after_a_cut_at_every_block_write_and_erase():
    require_vm("needs os.VfsLfs2 (the real LittleFS driver) in the MicroPython VM")
    run_both(CountersCheckpoint(), "counters")


def test_no_acknowledged_log_event_is_lost_after_a_cut_at_every_block_write_and_erase():
    require_vm("needs os.VfsLfs2 (the real LittleFS driver) in the MicroPython VM")
    assert run_both(LogAppend(), "log")[1] > 0  # appends beyond the inline limit erase


def test_a_torn_log_tail_is_repaired_safely_with_a_cut_at_every_block_write_and_erase():
    require_vm("needs os.VfsLfs2 (the real LittleFS driver) in the MicroPython VM")
    run_both(LogRepair(), "log-fix")


def test_the_sweep_catches_a_config_writer_that_removes_before_writing():
    require_vm("needs os.VfsLfs2 (the real LittleFS driver) in the MicroPython VM")
    covered, violations, _ = sweep(RemoveThenWriteConfigUpdate())
    print("powercut negative control, remove-then-write: %d of %d cut points violated"
          % (len(violations), covered))
    assert covered > 0 and violations


def test_the_sweep_catches_a_controller_that_doses_before_reserving():
    require_vm("needs os.VfsLfs2 (the real LittleFS driver) in the MicroPython VM")
    covered, violations, _ = sweep(DoseBeforeReserving())
    print("powercut negative control, dose-then-save: %d of %d cut points violated"
          % (len(violations), covered))
    assert covered > 0 and violations
    assert "under-reports" in violations[0][1]


class WearFlash(flashsim.FlashSim):
    """FlashSim that also counts erases per block."""

    def __init__(self, path, **kw):
        flashsim.FlashSim.__init__(self, path, **kw)
        self.per_block = [0] * self.blocks

    def ioctl(self, op, arg):
        if op == 6:
            self.per_block[arg] += 1
        return flashsim.FlashSim.ioctl(self, op, arg)


def test_a_day_of_checkpoints_and_events_costs_about_a_hundred_erases_spread_by_wear_leveling():
    """The numbers in docs/persistence.md: Pico-sized flash (352 blocks), default log
    ring, per day 144 counters checkpoints, 48 events and 1 config save."""
    require_vm("needs os.VfsLfs2 (the real LittleFS driver) in the MicroPython VM")
    days = 10
    point = "/" + flashsim.unique("wear")
    image = flashsim.tmpdir() + "/" + flashsim.unique("dosekit_wear_") + ".img"
    dev = WearFlash.blank(image, 352)
    try:
        flashsim.mkfs(dev)
        flashsim.mount(dev, point)
        store = Store(point + "/data")
        log = EventLog(point + "/log")
        store.save("config", config(3))
        store.save("counters", counters(0))
        cp = [0, 0]
        ev = [0, 0]
        p0, e0 = dev.programs, dev.erases
        for d in range(days):
            for i in range(144):
                p, e = dev.programs, dev.erases
                store.save("counters", counters((d * 144 + i) * 100))
                cp[0] += dev.programs - p
                cp[1] += dev.erases - e
                if i % 3 == 0:
                    p, e = dev.programs, dev.erases
                    log.append(i * 600000, 0, 5, i)
                    ev[0] += dev.programs - p
                    ev[1] += dev.erases - e
            store.save("config", config(d % 4))
        per_day = (dev.erases - e0) / days
        print("wear: checkpoint %.2f programs %.2f erases; append %.2f programs %.2f erases;"
              " %.0f programs %.0f erases per day; %d blocks erased, hottest %d in %d days"
              % (cp[0] / (days * 144), cp[1] / (days * 144), ev[0] / (days * 48),
                 ev[1] / (days * 48), (dev.programs - p0) / days, per_day,
                 sum(1 for n in dev.per_block if n), max(dev.per_block), days))
        assert cp[1] / (days * 144) < 0.5
        assert ev[1] / (days * 48) < 1.1
        assert per_day < 150
        assert per_day * 2557 / 352 < 1500  # 7 years, spread over the Pico's blocks: < 1.5 % of 100k
        # LittleFS moves a metadata pair after block_cycles (100) erases: the hottest
        # block is capped there instead of taking most of the ~80 erases a day.
        assert max(dev.per_block) <= 2 * 100
        os.umount(point)
    finally:
        dev.close()
        flashsim.remove(image)
