"""Pump, reservoir, catheter line and sensors behind the virtual board's pins.

Runs on CPython and inside the MicroPython VM (plain code: no dataclasses, no typing
at run time, floats only outside IRQs).

Lazy by design: nothing runs per motor step. The STEP pin's `rising` counter is a
logic analyser; `sync()` reads it whenever the physics is looked at (an ADC sample,
a fault, the scenario driver's periodic call) and integrates everything since the
last look in one go, assuming the steps were spread evenly over that span (exact
at a constant rate). DIR and ENABLE changes are binned by Pin watchers that touch
small integers only (no allocation: they may run with the heap locked).

Model (units: uL, kPa, s):
  pump      each microstep moved while the driver is enabled displaces
            ul_per_rev / steps_per_rev * (1 + true_error) uL, less slip_per_kpa * P
            (backflow under line pressure); a stalled motor moves nothing; an empty
            reservoir gives air (nothing); reverse steps draw back into the reservoir.
  line      one compliance C (uL/kPa) at pressure P, drained by the catheter to the
            patient (conductance G = 1/R, uL/s per kPa, against p_out kPa) and by a
            leak to 0 kPa:  C dP/dt = Q - G (P - p_out) - G_leak P
            Solved exactly (exponential relaxation) between syncs; a full occlusion
            (G = 0, no leak) is a straight ramp Q/C.
  sensor    0-200 kPa gauge transducer, 0.5-4.5 V, divider into a 12-bit ADC with
            ~1 LSB RMS Gaussian noise and the RP2040's DNL spikes (codes 512, 1536,
            2560, 3584 swallow `dnl_width` LSB of input each, erratum E11).
  optional  rotor encoder (counts of real rotor motion; a stall shows as steps
            without counts) and a load cell under the outlet (grams collected).

Faults (set_fault): occlusion (fraction of the line's conductance lost: 1.0 full,
0.98 a kink), release, disconnect (catheter off: nothing reaches the patient, the
line drains at ~0 kPa), leak (extra path, ratio x the line's conductance),
reconnect, stall / unstall, reservoir_empty, sensor stuck / open / rail / ok.
"""
import math

# Catheter/line models (DOMAIN.md "two catheter/line models"). compliance uL/kPa,
# resistance kPa*s/uL, p_out kPa downstream (CSF ~1 kPa for an implant).
LINES = {
    # ~12 uL displaced to reach 100 kPa when occluded: ~72 min at 10 uL/h.
    "implant": {"compliance_ul_kpa": 0.12, "resistance_kpa_s_ul": 36.0, "p_out_kpa": 1.0},
    # ~460 uL to 100 kPa: ~4.6 h at 100 uL/h, ~55 min at 500 uL/h (syringe drivers).
    "syringe": {"compliance_ul_kpa": 4.6, "resistance_kpa_s_ul": 20.0, "p_out_kpa": 0.0},
}

DEFAULTS = {
    "line": "implant",
    # pump head (DOMAIN.md reference: 64 uL/rev, 200 x 16 microsteps)
    "ul_per_rev": 64.0,
    "steps_per_rev": 3200,
    "true_error": 0.0,  # true displacement / nominal - 1 (calibration error)
    "slip_per_kpa": 0.0,  # fraction of each stroke lost per kPa of line pressure
    "stall_kpa": 400.0,  # the head cannot push harder: rollers slip, fluid stays behind
    "reservoir_ul": 0.0,  # true drug volume at start (a refill event replaces it)
    # line: None takes the value from LINES[line]
    "compliance_ul_kpa": None,
    "resistance_kpa_s_ul": None,
    "p_out_kpa": None,
    "p0_kpa": None,  # initial line pressure (default p_out)
    "disconnect_ratio": 20.0,  # a cut catheter: leak conductance / line conductance
    # pressure sensor and ADC
    "kpa_full": 200.0,
    "v_zero": 0.5,
    "v_full": 4.5,
    "v_supply": 5.0,  # what a rail fault reads
    "divider": 2.0 / 3.0,  # ADC volts per sensor volt (3:2 divider)
    "vref": 3.3,
    "bits": 12,
    "noise_lsb": 1.0,
    "dnl_codes": (512, 1536, 2560, 3584),
    "dnl_width": 4.0,
    "seed": 1,
    # optional sensors
    "encoder_cpr": 0,  # rotor encoder counts per revolution (0: none)
    "load_cell": False,
    "load_cell_noise_g": 0.0005,
    "density_g_ml": 1.0,
    # lazy integration: the scenario driver syncs at least this often (virtual s)
    "sync_s": 300.0,
}


class Rng:
    """xorshift32: the same sequence on CPython and the VM."""

    def __init__(self, seed):
        self.s = (seed & 0xFFFFFFFF) or 0x9E3779B9

    def u32(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def uniform(self):
        return (self.u32() + 0.5) / 4294967296.0

    def gauss(self):
        return math.sqrt(-2.0 * math.log(self.uniform())) * math.cos(6.283185307179586 * self.uniform())


def params(overrides=None):
    """DEFAULTS + LINES[line] + overrides, every value checked."""
    p = dict(DEFAULTS)
    if overrides:
        for k in overrides:
            if k not in DEFAULTS:
                raise ValueError("physics: unknown parameter %r; known: %s" % (k, ", ".join(sorted(DEFAULTS))))
            p[k] = overrides[k]
    line = p["line"]
    if line not in LINES:
        raise ValueError("physics: line %r is not one of %s" % (line, ", ".join(sorted(LINES))))
    for k in LINES[line]:
        if p[k] is None:
            p[k] = LINES[line][k]
    if p["p0_kpa"] is None:
        p["p0_kpa"] = p["p_out_kpa"]
    for k in ("compliance_ul_kpa", "resistance_kpa_s_ul", "ul_per_rev", "steps_per_rev", "vref", "sync_s"):
        if not p[k] > 0:
            raise ValueError("physics: %s must be > 0, got %r" % (k, p[k]))
    return p


class Physics:
    """The pump's physical world on one SimClock. Attach to the firmware's pins with
    `install(machine, motor)` before the firmware builds its hardware."""

    def __init__(self, clock, overrides=None):
        p = params(overrides)
        self.p = p
        self.clock = clock
        self.t_us = clock.now_us
        self.sync_us = int(p["sync_s"] * 1_000_000)
        self.next_sync_us = self.t_us + self.sync_us
        self.ul_step = p["ul_per_rev"] / p["steps_per_rev"] * (1.0 + p["true_error"])
        self.C = float(p["compliance_ul_kpa"])
        self.G_line = 1.0 / p["resistance_kpa_s_ul"]
        self.p_out = float(p["p_out_kpa"])
        self.P = float(p["p0_kpa"])
        self.reservoir_ul = float(p["reservoir_ul"])
        self.rng = Rng(p["seed"])
        # fault state
        self.occlusion = 0.0  # fraction of line conductance lost
        self.disconnected = False
        self.leak_ratio = 0.0
        self.stalled = False
        self.sensor_mode = "ok"
        self.stuck_code = 0
        # totals (uL) and step bins
        self.pumped_ul = 0.0  # left the reservoir into the line (net)
        self.delivered_ul = 0.0  # reached the patient (net of any backflow)
        self.leaked_ul = 0.0
        self.air_steps = 0  # forward steps with an empty reservoir
        self.stalled_steps = 0
        self.ignored_steps = 0  # pulses while the driver was disabled
        self.moved_steps = 0  # net microsteps the rotor really turned
        self.peak_kpa = self.P
        self._step = None
        self._seen = 0
        self._fwd_pins = 0
        self._rev_pins = 0
        self._dir_fwd = True
        self._en_on = False
        self._motor = None
        self._dir_pin = None
        self._en_pin = None

    # ---- wiring ------------------------------------------------------------------------
    def install(self, machine, motor, pressure=None):
        """Hook the board's STEP/DIR/EN pins (board MOTOR dict) and put the pressure
        sensor on its ADC pin (board PRESSURE dict). Pins the firmware creates later
        (also after a reset) are picked up through machine.PIN_HOOKS."""
        self._motor = motor
        hooks = machine.PIN_HOOKS
        hooks[motor["step"]] = self._new_step_pin
        hooks[motor["dir"]] = self._new_dir_pin
        if motor.get("enable") is not None:
            hooks[motor["enable"]] = self._new_en_pin
        else:
            self._en_on = True
        if pressure is not None:
            self.p["divider"] = pressure["divider_den"] / pressure["divider_num"]
            self.p["v_zero"] = pressure["v_zero_mv"] / 1000.0
            self.p["v_full"] = pressure["v_full_mv"] / 1000.0
            self.p["kpa_full"] = float(pressure["kpa_full"])
            machine.ANALOG[pressure["adc"]] = PressureSensor(self)

    def _flush_bins(self):
        """Move steps seen since the last look into the current DIR/EN bin (no allocation)."""
        step = self._step
        if step is None:
            return
        r = step.rising
        n = r - self._seen
        if n:
            self._seen = r
            if not self._en_on:
                self.ignored_steps += n
            elif self._dir_fwd:
                self._fwd_pins += n
            else:
                self._rev_pins += n

    def _new_step_pin(self, pin):
        self._flush_bins()
        self._step = pin
        self._seen = pin.rising
        if self._motor is not None and self._motor.get("enable") is None:
            self._en_on = True  # no enable pin: the driver is always on

    def _new_dir_pin(self, pin):
        self._flush_bins()
        self._dir_pin = pin
        pin.watcher = self._on_dir
        self._on_dir(pin, pin.value())

    def _new_en_pin(self, pin):
        self._flush_bins()
        self._en_pin = pin
        pin.watcher = self._on_en
        self._on_en(pin, pin.value())

    def _on_dir(self, pin, v):
        self._flush_bins()
        self._dir_fwd = (v == 1) != self._motor.get("dir_invert", False)

    def _on_en(self, pin, v):
        self._flush_bins()
        self._en_on = v == (0 if self._motor.get("enable_active_low", True) else 1)

    def uninstall(self, machine):
        """Take the hooks and the pressure source off the simulated machine."""
        self.sync()
        m = self._motor
        if m is not None:
            for key in ("step", "dir", "enable"):
                pid = m.get(key)
                if pid is not None and machine.PIN_HOOKS.get(pid) is not None:
                    del machine.PIN_HOOKS[pid]
        for pid in list(machine.ANALOG):
            src = machine.ANALOG[pid]
            if isinstance(src, PressureSensor) and src.physics is self:
                del machine.ANALOG[pid]
        for pin in (self._dir_pin, self._en_pin):
            if pin is not None:
                pin.watcher = None
        self._step = self._dir_pin = self._en_pin = None

    def power_off(self):
        """The board lost power: account for everything; the driver is unpowered
        until the firmware makes its pins again."""
        self.sync()
        self._en_on = False
        self._step = None

    # ---- integration -------------------------------------------------------------------
    def maybe_sync(self):
        if self.clock.now_us >= self.next_sync_us:
            self.sync()

    def sync(self):
        """Integrate from the last sync to now (steps spread evenly over the span)."""
        now = self.clock.now_us
        dt = (now - self.t_us) / 1_000_000
        self.t_us = now
        self.next_sync_us = now + self.sync_us
        self._flush_bins()
        fwd = self._fwd_pins
        rev = self._rev_pins
        self._fwd_pins = 0
        self._rev_pins = 0
        if self.stalled:
            self.stalled_steps += fwd + rev
            fwd = rev = 0
        net = fwd - rev
        self.moved_steps += net
        want = net * self.ul_step
        if want > 0:
            got = want if want <= self.reservoir_ul else self.reservoir_ul
            if got < want:
                self.air_steps += int((want - got) / self.ul_step + 0.5)
        else:
            got = want  # reverse: drawn back from the line
        self.reservoir_ul -= got
        self._line(got, dt)

    def _line(self, vol, dt):
        C = self.C
        P = self.P
        if self.disconnected:
            G = 0.0
            GL = self.G_line * self.p["disconnect_ratio"]
        else:
            G = self.G_line * (1.0 - self.occlusion)
            GL = self.G_line * self.leak_ratio
        p_out = self.p_out
        if dt <= 0:
            P1 = P + vol / C
            pmax = self.p["stall_kpa"]
            if P1 > pmax:
                self.reservoir_ul += (P1 - pmax) * C
                vol -= (P1 - pmax) * C
                P1 = pmax
            self.P = P1
            self.pumped_ul += vol
            self._peak()
            return
        Q = vol / dt
        slip = self.p["slip_per_kpa"] * Q if Q > 0 else 0.0
        Gt = G + GL + slip
        b = Q + G * p_out
        if Gt > 0:
            tau = C / Gt
            P_inf = b / Gt
            x = dt / tau
            e = math.exp(-x) if x < 700 else 0.0
            P1 = P_inf + (P - P_inf) * e
            intP = P_inf * dt + (P - P_inf) * tau * (1.0 - e)
        else:
            P1 = P + b * dt / C
            intP = (P + P1) * 0.5 * dt
        slipped = slip * intP
        pmax = self.p["stall_kpa"]
        if P1 > pmax:  # the rollers slip at the head's limit (intP stays approximate)
            slipped += (P1 - pmax) * C
            P1 = pmax
        self.reservoir_ul += slipped
        self.pumped_ul += vol - slipped
        self.delivered_ul += G * (intP - p_out * dt)
        self.leaked_ul += GL * intP
        self.P = P1
        self._peak()

    def _peak(self):
        if self.P > self.peak_kpa:
            self.peak_kpa = self.P

    # ---- events ------------------------------------------------------------------------
    def refill(self, ul):
        """A refill: what was left is withdrawn, `ul` is put in (as a clinician does)."""
        self.sync()
        self.reservoir_ul = float(ul)

    def set_fault(self, kind, value=None):
        """Inject or clear a fault now (see the module docstring for kinds)."""
        self.sync()
        if kind == "occlusion":
            f = 1.0 if value is None else float(value)
            if not 0.0 <= f <= 1.0:
                raise ValueError("occlusion fraction %r outside 0-1 (1 = full, 0.98 = kink)" % (value,))
            self.occlusion = f
        elif kind == "release":
            self.occlusion = 0.0
        elif kind == "disconnect":
            self.disconnected = True
        elif kind == "leak":
            self.leak_ratio = 1.0 if value is None else float(value)
        elif kind == "reconnect":
            self.disconnected = False
            self.leak_ratio = 0.0
        elif kind == "stall":
            self.stalled = True
        elif kind == "unstall":
            self.stalled = False
        elif kind == "reservoir_empty":
            self.reservoir_ul = 0.0
        elif kind == "sensor":
            mode = "ok" if value is None else value
            if mode not in ("ok", "stuck", "open", "rail"):
                raise ValueError("sensor fault %r is not one of ok, stuck, open, rail" % (mode,))
            if mode == "stuck":
                self.stuck_code = self._code_now()
            self.sensor_mode = mode
        else:
            raise ValueError("fault %r unknown" % (kind,))

    # ---- sensors -----------------------------------------------------------------------
    def sensor_volts(self):
        """Transducer output (V) at the true line pressure, saturating past full scale."""
        p = self.p
        mode = self.sensor_mode
        if mode == "open":
            return 0.0
        if mode == "rail":
            return p["v_supply"]
        v = p["v_zero"] + (p["v_full"] - p["v_zero"]) * self.P / p["kpa_full"]
        lo = p["v_zero"] * 0.5
        hi = p["v_full"] + (p["v_supply"] - p["v_full"]) * 0.5
        return lo if v < lo else hi if v > hi else v

    def _code_now(self):
        p = self.p
        full = (1 << p["bits"]) - 1
        x = self.sensor_volts() * p["divider"] / p["vref"] * full
        if p["noise_lsb"]:
            x += p["noise_lsb"] * self.rng.gauss()
        half = p["dnl_width"] * 0.5
        for c in p["dnl_codes"]:
            if c - half - 0.5 <= x < c + half + 0.5:
                x = c
                break
        code = int(x + 0.5)
        return 0 if code < 0 else full if code > full else code

    def adc_code(self):
        """One 12-bit conversion of the pressure channel (syncs the physics first)."""
        self.sync()
        if self.sensor_mode == "stuck":
            return self.stuck_code
        return self._code_now()

    def kpa_from_code(self, code):
        """What firmware would compute from a code (the board's nominal transfer)."""
        p = self.p
        full = (1 << p["bits"]) - 1
        v = code * p["vref"] / full / p["divider"]
        return (v - p["v_zero"]) * p["kpa_full"] / (p["v_full"] - p["v_zero"])

    def encoder_count(self):
        cpr = self.p["encoder_cpr"]
        return self.moved_steps * cpr // self.p["steps_per_rev"] if cpr else None

    def load_cell_g(self):
        if not self.p["load_cell"]:
            return None
        self.sync()
        return self.delivered_ul / 1000.0 * self.p["density_g_ml"] + self.p["load_cell_noise_g"] * self.rng.gauss()

    def state(self):
        """Plain snapshot (after a sync) for reports."""
        self.sync()
        return {"pressure_kpa": self.P, "pumped_ul": self.pumped_ul, "delivered_ul": self.delivered_ul,
                "leaked_ul": self.leaked_ul, "reservoir_ul": self.reservoir_ul,
                "moved_steps": self.moved_steps, "stalled_steps": self.stalled_steps,
                "air_steps": self.air_steps, "ignored_steps": self.ignored_steps}


class PressureSensor:
    """What sits in machine.ANALOG for the pressure pin: volts (plain ADC path) or a
    noisy 12-bit code (machine.ADC uses `adc_code` when present)."""

    def __init__(self, physics):
        self.physics = physics

    def __call__(self):
        self.physics.sync()
        return self.physics.sensor_volts() * self.physics.p["divider"]

    def adc_code(self):
        return self.physics.adc_code()
