"""The simulated `time` module's functions: virtual time that wraps like a board's."""
from vboard.clock import CLOCK, ticks_diff, ticks_add  # noqa: F401

ticks_us = CLOCK.ticks_us
ticks_ms = CLOCK.ticks_ms
ticks_cpu = CLOCK.ticks_cpu
time = CLOCK.time
sleep = CLOCK.sleep
sleep_ms = CLOCK.sleep_ms
sleep_us = CLOCK.sleep_us
