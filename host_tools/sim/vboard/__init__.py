"""The virtual board's hardware: a wrapping clock, timers, pins, ADC, watchdog.

Runs on the MicroPython VM (through the `shadow/` modules that replace the
built-in `machine` and `time`) and on CPython (tests import it directly).
"""
