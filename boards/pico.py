"""Raspberry Pi Pico / Pico W (RP2040) with a STEP/DIR driver (A4988, DRV8825, TMC2209).

Data only. `pumpctl flash` (or by hand: `mpremote cp boards/pico.py :board.py`)
copies this file onto the board as `board.py`, the one module name the
firmware imports, so the same device code serves every board.

Wiring (GP numbers):
  GP2  -> driver STEP          GP3 -> driver DIR       GP4 -> driver EN (active low)
  GP26 (ADC0) <- pressure transducer 0.5-4.5 V through a 2:3 divider (4.5 V -> 3.0 V)
  GP29 (ADC3)  = VSYS/3 on the Pico board itself (supply/battery voltage)
  GP15 -> piezo buzzer (through a transistor)   "LED" = on-board LED (GP25; CYW43 on Pico W)
MS1/MS2/MS3 strapped for 16 microsteps; driver VMOT 8-35 V with a 100 uF cap.
"""
NAME = "Raspberry Pi Pico (RP2040), step/dir driver"
MCU = "rp2"

MOTOR = {
    "driver": "stepdir",
    "chip": "A4988",  # A4988 | DRV8825 | TMC2209 (minimum pulse widths in pump/motor.py)
    "step": 2,
    "dir": 3,
    "enable": 4,
    "enable_active_low": True,  # all three chips: EN/ENN low = outputs on
    "dir_invert": False,
    "full_steps_per_rev": 200,
    "microsteps": 16,
    "max_sps": 4000,  # motor's top speed, microsteps/s: also the catch-up rate
    "pulse_us": 0,  # bytecode Pin calls already give ~5.9 us at 125 MHz (> 1.9 us)
}

# Reference bench peristaltic head (DOMAIN.md): ~64 uL/rev -> ~0.02 uL per microstep.
PUMP = {"cal_pl_per_step": 20_000}

PRESSURE = {"adc": 26, "divider_num": 3, "divider_den": 2,  # volts at sensor = volts at pin * 3/2
            "v_zero_mv": 500, "v_full_mv": 4500, "kpa_full": 200}
SUPPLY = {"adc": 29, "divider_num": 3, "divider_den": 1, "vref_mv": 3300}  # VSYS/3 on ADC3

LED = "LED"
BUZZER = 15

AUX_TIMER_ID = -1  # watchdog feeder while a host works at the REPL after Ctrl-C
TIMER_ID = -1  # rp2 timers are virtual (SDK alarm pool): id -1
WDT_TIMEOUT_MS = 8000  # RP2040 maximum is 8388 ms
FS_BLOCK_SIZE = 4096
