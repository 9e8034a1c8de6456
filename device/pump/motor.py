"""Motor drivers behind one small interface.

The dose engine only ever calls `pulse()` (one microstep in the current
direction) from its IRQ, and `set_direction()`/`enable()` from the main loop.
A board-specific fast path (viper on the SIO registers, a PIO program, ESP32
RMT) can replace `pulse` without touching the engine.
"""
# Datasheet minimum STEP high/low times (ns) and DIR setup before a STEP edge (ns).
# A4988: 1 us high/low, 200 ns setup; DRV8825: 1.9 us, 650 ns; TMC2209: 100 ns, 20 ns.
DRIVER_TIMING_NS = {
    "A4988": (1000, 200),
    "DRV8825": (1900, 650),
    "TMC2209": (100, 20),
}

# Two bytecode Pin.value calls make a ~5.9 us pulse on an emulated RP2040 at
# 125 MHz (PLATFORM.md), longer than every minimum above, so the default pulse
# is unpadded. A board fast enough to beat 1.9 us, or a viper/PIO fast path,
# sets `pulse_us` and the driver pads the pulse with sleep_us.


def _no_sleep(us):
    pass


class StepDirDriver:
    """STEP/DIR/ENABLE drivers: A4988, DRV8825, TMC2209 in step/dir mode."""

    def __init__(self, step_pin, dir_pin, enable_pin=None, enable_active_low=True,
                 chip="A4988", dir_invert=False, pulse_us=0, sleep_us=None):
        if chip not in DRIVER_TIMING_NS:
            raise ValueError("driver chip %r unknown; use one of %s" % (chip, sorted(DRIVER_TIMING_NS)))
        self.chip = chip
        self._step = step_pin
        self._dir = dir_pin
        self._en = enable_pin
        self._en_on = 0 if enable_active_low else 1
        self._dir_invert = dir_invert
        self.direction = 1
        self.enabled = False
        if pulse_us and sleep_us is None:
            raise ValueError("pulse_us=%d needs sleep_us (time.sleep_us) to pad the pulse" % pulse_us)
        self._pulse_us = pulse_us
        self._sleep_us = sleep_us if sleep_us is not None else _no_sleep
        self._step_value = step_pin.value  # bound once: the IRQ must not allocate
        step_pin.value(0)
        self.set_direction(1)
        self.enable(False)
        # Pick the pulse body once so the IRQ path has no branch for padding.
        self.pulse = self._pulse_padded if pulse_us else self._pulse_plain

    def _pulse_plain(self):
        v = self._step_value
        v(1)
        v(0)

    def _pulse_padded(self):
        v = self._step_value
        v(1)
        self._sleep_us(self._pulse_us)
        v(0)

    def set_direction(self, sign):
        """+1 delivers, -1 withdraws (pressure back-off). Not from an IRQ."""
        self.direction = 1 if sign >= 0 else -1
        forward = self.direction > 0
        self._dir.value(1 if forward != self._dir_invert else 0)

    def enable(self, on):
        """Energise the coils; disabled means no holding torque and no steps."""
        self.enabled = bool(on)
        if self._en is not None:
            self._en.value(self._en_on if on else 1 - self._en_on)


def from_board(board, machine, time_mod=None):
    """Builds the driver a board definition describes (boards/*.py `MOTOR`)."""
    m = board.MOTOR
    kind = m.get("driver", "stepdir")
    if kind != "stepdir":
        raise ValueError("motor driver %r not supported yet (stepdir only)" % kind)
    Pin = machine.Pin
    en = m.get("enable")
    return StepDirDriver(
        Pin(m["step"], Pin.OUT, value=0),
        Pin(m["dir"], Pin.OUT, value=0),
        Pin(en, Pin.OUT, value=1 if m.get("enable_active_low", True) else 0) if en is not None else None,
        enable_active_low=m.get("enable_active_low", True),
        chip=m.get("chip", "A4988"),
        dir_invert=m.get("dir_invert", False),
        pulse_us=m.get("pulse_us", 0),
        sleep_us=time_mod.sleep_us if time_mod is not None else None,
    )
