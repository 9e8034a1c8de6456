"""Espressif ESP32-DevKitC (ESP32-WROOM-32) with a STEP/DIR driver (A4988, DRV8825, TMC2209).

Data only; copied onto the board as `board.py` (see boards/pico.py).

Wiring (GPIO numbers; strapping pins 0/2/5/12/15 and flash pins 6-11 avoided):
  GPIO25 -> driver STEP      GPIO26 -> driver DIR      GPIO27 -> driver EN (active low)
  GPIO34 (ADC1_CH6, input only) <- pressure transducer 0.5-4.5 V through a 2:3 divider.
  ADC1 only: ADC2 is unusable while WiFi is on.
  GPIO18 -> piezo buzzer (through a transistor)   GPIO19 -> alarm LED (DevKitC has no user LED)
The DevKitC has no supply-voltage divider: no low-battery monitoring unless you add one.
ESP32 timer callbacks are always soft (scheduled, ms jitter): the dose engine detects
that `hard=True` is refused and its clock-driven countdown absorbs the jitter.
"""
NAME = "ESP32-DevKitC, step/dir driver"
MCU = "esp32"

MOTOR = {
    "driver": "stepdir",
    "chip": "A4988",
    "step": 25,
    "dir": 26,
    "enable": 27,
    "enable_active_low": True,
    "dir_invert": False,
    "full_steps_per_rev": 200,
    "microsteps": 16,
    "max_sps": 4000,
    "pulse_us": 0,
}

PUMP = {"cal_pl_per_step": 20_000}

PRESSURE = {"adc": 34, "divider_num": 3, "divider_den": 2,
            "v_zero_mv": 500, "v_full_mv": 4500, "kpa_full": 200}
SUPPLY = None

LED = 19
BUZZER = 18

TIMER_ID = 0  # hardware timers 0-3
AUX_TIMER_ID = 1  # watchdog feeder while a host works at the REPL after Ctrl-C
WDT_TIMEOUT_MS = 8000
FS_BLOCK_SIZE = 4096
