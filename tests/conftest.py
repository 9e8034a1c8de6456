"""CPython side of the test suite: device code and the simulator import as on the VM."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / "tests" / "shims", ROOT / "tests" / "device", ROOT / "device",
          ROOT / "host_tools" / "sim", ROOT / "host_tools", ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
