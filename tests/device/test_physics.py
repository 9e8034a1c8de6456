# vm-heap: 256K (a firmware day and the physics harness share one VM process here; the firmware alone is measured by make bench)
"""The virtual board's pump physics (host_tools/sim/vboard/physics.py), on CPython and the VM."""
import gc

from vboard import machine
from vboard.clock import SimClock, CLOCK
from vboard.physics import Physics, Rng
from boards import virtual as board
from vmtest import ON_VM, require_vm, raises

MOTOR = board.MOTOR
H_US = 3_600_000_000


class Bench:
    """Physics on its own clock with the board's STEP/DIR/EN pins made as the firmware makes them."""

    def __init__(self, **overrides):
        self.clock = SimClock()
        self.phys = Physics(self.clock, overrides)
        self.phys.install(machine, MOTOR, board.PRESSURE)
        self.step = machine.Pin(MOTOR["step"], machine.Pin.OUT, value=0)
        self.dir = machine.Pin(MOTOR["dir"], machine.Pin.OUT, value=1)
        self.en = machine.Pin(MOTOR["enable"], machine.Pin.OUT, value=0)  # active low: on
        self.adc = machine.ADC(machine.Pin(board.PRESSURE["adc"]))

    def close(self):
        self.phys.uninstall(machine)

    def pulses(self, n):
        v = self.step.value
        for _ in range(n):
            v(1)
            v(0)

    def pump(self, ul_h, seconds, ul_step=0.02, until_kpa=None, sync_s=30):
        """Step at `ul_h` for `seconds` (syncing every sync_s); returns the seconds at which
        the line pressure first reached `until_kpa` (or None)."""
        interval = ul_step / ul_h * H_US
        t = 0.0
        owed = 0.0
        start = self.clock.now_us
        while t < seconds:
            owed += sync_s * 1_000_000 / interval
            n = int(owed)
            owed -= n
            self.pulses(n)
            self.clock.advance(sync_s * 1_000_000)
            self.phys.sync()
            t = (self.clock.now_us - start) / 1_000_000
            if until_kpa is not None and self.phys.P >= until_kpa:
                return t
        return None


def test_steps_displace_volume_with_the_true_vs_nominal_error():
    b = Bench(true_error=0.05, reservoir_ul=20_000.0)
    try:
        b.pulses(1000)
        b.clock.advance(10_000_000)
        b.phys.sync()
        assert abs(b.phys.pumped_ul - 1000 * 0.02 * 1.05) < 1e-6
        assert abs(b.phys.reservoir_ul - (20_000 - 21.0)) < 1e-6
        assert b.phys.moved_steps == 1000
    finally:
        b.close()


def test_reverse_and_disabled_steps():
    b = Bench(reservoir_ul=100.0)
    try:
        b.pulses(100)
        b.dir.value(0)  # reverse: back into the reservoir
        b.pulses(40)
        b.en.value(1)  # disabled: the driver ignores pulses
        b.pulses(7)
        b.clock.advance(1_000_000)
        b.phys.sync()
        assert b.phys.moved_steps == 60 and b.phys.ignored_steps == 7
        assert abs(b.phys.pumped_ul - 1.2) < 1e-9
    finally:
        b.close()


def test_reservoir_runs_dry_and_the_pump_moves_air():
    b = Bench(reservoir_ul=1.0)
    try:
        b.pulses(100)  # 2 uL asked, 1 uL there
        b.clock.advance(60_000_000)
        b.phys.sync()
        assert abs(b.phys.pumped_ul - 1.0) < 1e-9 and b.phys.reservoir_ul == 0.0
        assert b.phys.air_steps == 50
    finally:
        b.close()


def test_stall_counts_steps_without_displacement_or_encoder_counts():
    b = Bench(reservoir_ul=100.0, encoder_cpr=64)
    try:
        b.pulses(3200)
        b.clock.advance(600_000_000)
        b.phys.set_fault("stall")
        b.pulses(500)
        b.phys.set_fault("unstall")
        b.clock.advance(1_000_000)
        b.phys.sync()
        assert b.phys.stalled_steps == 500 and b.phys.moved_steps == 3200
        assert b.phys.encoder_count() == 64
        assert abs(b.phys.pumped_ul - 64.0) < 1e-6
    finally:
        b.close()


def test_open_line_pressure_settles_at_outflow_pressure_plus_flow_times_resistance():
    b = Bench(reservoir_ul=20_000.0)  # implant line: 36 kPa*s/uL to 1 kPa
    try:
        b.pump(1000.0, 600)  # 1 mL/h for 10 min (tau ~4 s)
        q = 1000.0 / 3600
        assert abs(b.phys.P - (1.0 + q * 36.0)) < 0.2, b.phys.P
        b.clock.advance(120_000_000)  # stopped: relaxes to p_out
        b.phys.sync()
        assert abs(b.phys.P - 1.0) < 0.01
        # mass balance: pumped = delivered + leaked + stored in the compliance
        p = b.phys
        stored = (p.P - 1.0) * p.C
        assert abs(p.pumped_ul - p.delivered_ul - p.leaked_ul - stored) < 1e-6
    finally:
        b.close()


def test_implant_line_occluded_reaches_100_kpa_in_about_75_min_at_10_ul_h():
    b = Bench(reservoir_ul=20_000.0)
    try:
        b.pump(10.0, 600)
        b.phys.set_fault("occlusion", 1.0)
        t = b.pump(10.0, 4 * 3600, until_kpa=100.0)
        assert t is not None and 62 * 60 <= t <= 85 * 60, t  # DOMAIN.md: ~75 min, ~12 uL
        b.phys.set_fault("release")
        b.clock.advance(600_000_000)
        b.phys.sync()
        assert b.phys.P < 2.0  # the stored bolus went to the patient
    finally:
        b.close()


def test_syringe_rig_occluded_reaches_100_kpa_in_about_5_h_and_50_min():
    for ul_h, lo, hi in ((100.0, 4.0 * 3600, 5.5 * 3600), (500.0, 45 * 60, 62 * 60)):
        b = Bench(line="syringe", ul_per_rev=0.41 * 3200, reservoir_ul=10_000.0)
        try:
            b.phys.set_fault("occlusion")
            t = b.pump(ul_h, 8 * 3600, ul_step=0.41, until_kpa=100.0, sync_s=60)
            assert t is not None and lo <= t <= hi, (ul_h, t)
        finally:
            b.close()


def test_kink_raises_pressure_partially_and_disconnection_drops_it():
    b = Bench(reservoir_ul=20_000.0)
    try:
        b.pump(1000.0, 600)
        open_p = b.phys.P
        b.phys.set_fault("occlusion", 0.9)  # 10x resistance
        b.pump(1000.0, 600)
        kink_p = b.phys.P
        assert 8 * (open_p - 1) < kink_p - 1 < 12 * (open_p - 1), (open_p, kink_p)
        b.phys.set_fault("release")
        b.phys.set_fault("disconnect")
        before = b.phys.delivered_ul
        b.pump(1000.0, 600)
        assert b.phys.P < 0.6 < open_p and abs(b.phys.delivered_ul - before) < 0.5
        assert b.phys.leaked_ul > 150
    finally:
        b.close()


def test_adc_noise_is_about_one_lsb_rms_and_reads_the_pressure():
    b = Bench(reservoir_ul=0.0, p0_kpa=50.0, p_out_kpa=50.0)
    try:
        codes = [b.adc.read_u16() >> 4 for _ in range(400)]
        mean = sum(codes) / len(codes)
        rms = (sum((c - mean) ** 2 for c in codes) / len(codes)) ** 0.5
        assert 0.6 < rms < 1.5, rms
        assert abs(b.phys.kpa_from_code(mean) - 50.0) < 0.2
        ideal = (0.5 + 4.0 * 50 / 200) * 2 / 3 / 3.3 * 4095
        assert abs(mean - ideal) < 0.5
    finally:
        b.close()


def test_dnl_spike_codes_swallow_neighbouring_inputs():
    # 512 LSB at the ADC = 0.4126 V = 0.619 V sensor = 5.95 kPa
    b = Bench(noise_lsb=0.0)
    try:
        hits = 0
        for i in range(41):
            code_in = 508 + i * 0.2  # 508..516 LSB
            volts = code_in / 4095 * 3.3 * 1.5
            b.phys.P = (volts - 0.5) * 200 / 4.0
            if b.phys.adc_code() == 512:
                hits += 1
        assert hits >= 20  # 5 LSB of input (1 + dnl_width) land on code 512
    finally:
        b.close()


def test_sensor_faults_stuck_open_rail():
    b = Bench(noise_lsb=0.0, reservoir_ul=100.0)
    try:
        c0 = b.adc.read_u16() >> 4
        b.phys.set_fault("sensor", "stuck")
        b.phys.P = 80.0
        assert b.adc.read_u16() >> 4 == c0
        b.phys.set_fault("sensor", "open")
        assert b.adc.read_u16() >> 4 == 0
        b.phys.set_fault("sensor", "rail")
        assert b.adc.read_u16() >> 4 == 4095
        b.phys.set_fault("sensor", "ok")
        assert abs(b.phys.kpa_from_code(b.adc.read_u16() >> 4) - 80.0) < 0.2
        assert raises(ValueError, b.phys.set_fault, "sensor", "melted")
        assert raises(ValueError, b.phys.set_fault, "meteor")
    finally:
        b.close()


def test_the_head_cannot_push_past_its_stall_pressure():
    b = Bench(reservoir_ul=100.0)
    try:
        b.phys.set_fault("occlusion")
        b.pulses(3000)  # 60 uL into 0.12 uL/kPa would be 500 kPa
        b.clock.advance(60_000_000)
        b.phys.sync()
        assert b.phys.P == 400.0
        assert abs(b.phys.pumped_ul - 399.0 * 0.12) < 1e-6  # from 1 kPa to 400 kPa
        assert abs(b.phys.reservoir_ul + b.phys.pumped_ul - 100.0) < 1e-9
    finally:
        b.close()


def test_unknown_parameter_is_refused():
    e = raises(ValueError, Physics, CLOCK, {"compliance": 1})
    assert "compliance" in str(e) and "compliance_ul_kpa" in str(e)
    assert raises(ValueError, Physics, CLOCK, {"line": "garden hose"})


def test_rng_is_the_same_everywhere():
    r = Rng(1)
    assert [r.u32() for _ in range(3)] == [270369, 67634689, 2647435461]


def test_pin_watchers_do_not_allocate():
    require_vm("heap_lock and mem_alloc are the VM's")
    import micropython

    b = Bench()
    try:
        b.pulses(10)
        micropython.heap_lock()
        try:
            for _ in range(20):
                b.dir.value(0)
                b.step.value(1)
                b.step.value(0)
                b.dir.value(1)
                b.en.value(1)
                b.en.value(0)
        finally:
            micropython.heap_unlock()
        gc.collect()
        gc.disable()
        try:
            a0 = gc.mem_alloc()
            for _ in range(200):
                b.dir.value(0)
                b.step.value(1)
                b.step.value(0)
                b.dir.value(1)
            a1 = gc.mem_alloc()
        finally:
            gc.enable()
        assert a1 - a0 == 0, a1 - a0
    finally:
        b.close()


def test_firmware_dosing_a_day_moves_what_it_counts():
    from pumprig import PumpRig, DAY_MS

    CLOCK.now_us = (1 << 30) - 2_000_000  # as PumpRig starts: ticks wrap 2 s in
    phys = Physics(CLOCK, {"true_error": -0.03, "reservoir_ul": 0.0})
    phys.install(machine, MOTOR, board.PRESSURE)
    try:
        rig = PumpRig(start_us=CLOCK.now_us)
        phys.refill(20_000.0)
        c = rig.ready()
        rig.program({"mode": "continuous", "conc_ng_ml": 500_000, "dose_ng_day": 300_000})
        c.action("start", rig.now())
        rig.run(DAY_MS)
        phys.sync()
        n = rig.counted()
        assert 29_999 <= n <= 30_000
        assert phys.moved_steps == n
        assert abs(phys.pumped_ul - n * 0.02 * 0.97) < 1e-3
        assert 1.2 < phys.P < 1.3  # 1 kPa + 24.25 uL/h through 36 kPa*s/uL
        c.action("stop", rig.now())
        rig.run(1000)
        phys.sync()
        assert phys.ignored_steps == 0 and phys.moved_steps == n
    finally:
        phys.uninstall(machine)
