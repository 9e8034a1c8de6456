"""pyright over device/ and boards/, once against the rp2 stubs and once against the esp32 stubs.

Each stub set lives in its own directory (.venv/stubs/<port>): both ship a
top-level machine.pyi. The config is written per port into build/.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTS = ("rp2", "esp32")


def main():
    failed = 0
    (ROOT / "build").mkdir(exist_ok=True)
    for port in PORTS:
        cfg = {
            # pyright reads these relative to the config file's folder (build/).
            "include": ["../device", "../boards"],
            "extraPaths": ["../device", ".."],
            "typeshedPath": "../.venv/stubs/" + port,
            "stubPath": "../.venv/stubs/" + port,
            "pythonVersion": "3.8",
            "pythonPlatform": "Linux",
            "typeCheckingMode": "basic",
            "reportMissingModuleSource": "none",
        }
        path = ROOT / "build" / ("pyrightconfig-%s.json" % port)
        path.write_text(json.dumps(cfg, indent=1))
        exe = Path(sys.executable).parent / "pyright"
        print("pyright against the %s stubs:" % port, flush=True)
        r = subprocess.run([str(exe), "-p", str(path)], cwd=str(ROOT))
        failed |= r.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
