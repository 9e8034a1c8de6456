"""The virtual board: a Pico-like board on the simulated machine (host_tools/sim).

Data only, like every board, and copied to the virtual board's filesystem as
`board.py`. The simulator supplies `machine` and `time`; the pump and catheter
physics behind these pins arrive with the virtual board issue.
"""
NAME = "Virtual board (simulated RP2040, step/dir driver, reference pump)"
MCU = "virtual"

MOTOR = {
    "driver": "stepdir",
    "chip": "TMC2209",
    "step": 2,
    "dir": 3,
    "enable": 4,
    "enable_active_low": True,
    "dir_invert": False,
    "full_steps_per_rev": 200,
    "microsteps": 16,
    "max_sps": 4000,
    "pulse_us": 0,
}

PUMP = {"cal_pl_per_step": 20_000}
PRESSURE = {"adc": 26, "divider_num": 3, "divider_den": 2,
            "v_zero_mv": 500, "v_full_mv": 4500, "kpa_full": 200}
SUPPLY = {"adc": 29, "divider_num": 3, "divider_den": 1, "vref_mv": 3300}
LED = 25
BUZZER = 15
AUX_TIMER_ID = -1  # watchdog feeder while a host works at the REPL after Ctrl-C
TIMER_ID = -1
WDT_TIMEOUT_MS = 8000
FS_BLOCK_SIZE = 4096
