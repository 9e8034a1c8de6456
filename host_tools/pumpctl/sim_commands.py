"""`pumpctl sim`: the virtual board (serve it on a pseudo-terminal, run scenarios)."""
from pumpctl.cli import register


def setup(p):
    sub = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)
    sub.add_parser("info", help="what the virtual board is")


def handle(args):
    if args.sim_command == "info":
        print("virtual board: the unmodified device code on the MicroPython VM, simulated machine/time")
    return 0


register("sim", "the virtual board: serve it on a pseudo-terminal, run scenarios", setup, handle)
