# Shadows the VM's built-in `machine` with the virtual board's (see host_tools/sim/vboard).
from vboard.machine import *  # noqa: F401,F403
