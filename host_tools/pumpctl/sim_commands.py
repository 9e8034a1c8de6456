"""`pumpctl sim`: the virtual board (serve it on a pseudo-terminal, run scenarios)."""
import sys
from pathlib import Path

from pumpctl.cli import register

SIM = Path(__file__).resolve().parent.parent / "sim"  # host_tools/sim


def setup(p):
    sub = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)
    sub.add_parser("info", help="what the virtual board is")
    run_args(sub.add_parser("run", help="run a scenario file in virtual time, write a report",
                            description="Run a scenario (docs/simulation.md) on the virtual board in virtual time."))
    serve_args(sub.add_parser("serve", help="serve a virtual board on a pseudo-terminal (mpremote, pumpctl)",
                              description="Start a virtual board and print its port (docs/usb-link.md)."))


def handle(args):
    if args.sim_command == "info":
        print("virtual board: the unmodified device code on the MicroPython VM, simulated machine/time")
    if args.sim_command == "run":
        return run_scenario(args)
    if args.sim_command == "serve":
        return serve(args)
    return 0


def serve_args(sp):
    sp.add_argument("--name", default="virtual", help="board name in the port registry (default: virtual)")
    sp.add_argument("--image", help="flash image file (default: ~/.cache/dosekit/boards/NAME.img)")
    sp.add_argument("--fresh", action="store_true", help="erase the flash image and deploy the firmware again")
    sp.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second (default 1: real time)")
    sp.add_argument("--virtual", action="store_true", help="virtual time: as fast as the VM runs")
    sp.add_argument("--heap", default="384K", help="MicroPython heap (-X heapsize; default 384K)")
    sp.add_argument("--quiet", action="store_true", help="print only the port")


def serve(args):
    """Runs until Ctrl-C or SIGTERM; the port is recorded where pumpctl looks for boards."""
    if str(SIM) not in sys.path:
        sys.path.insert(0, str(SIM))
    import supervisor

    if args.speed <= 0:
        raise ValueError("--speed must be > 0 (use --virtual for virtual time)")
    return supervisor.serve(name=args.name, image=args.image, heap=args.heap,
                            speed=0.0 if args.virtual else args.speed, fresh=args.fresh, quiet=args.quiet)


def run_args(sp):
    sp.add_argument("scenario", help="scenario file (TOML; examples in tests/scenarios)")
    sp.add_argument("--report", metavar="FILE", help="write the JSON report to FILE")
    sp.add_argument("--plot", metavar="FILE", help="write a PNG plot to FILE")
    sp.add_argument("--heap", help="MicroPython heap for the run (-X heapsize; default 256K)")
    sp.add_argument("--quiet", action="store_true", help="no live status line")


def run_scenario(args):
    """`pumpctl sim run`: exit 0, or 1 if an [expect] check failed."""
    from sim import scenario

    return scenario.cli_run(args.scenario, args.report, args.plot, quiet=args.quiet, heap=args.heap,
                            as_json=getattr(args, "json", False))


register("sim", "the virtual board: serve it on a pseudo-terminal, run scenarios", setup, handle)
