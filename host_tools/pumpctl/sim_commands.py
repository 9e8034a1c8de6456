"""`pumpctl sim`: the virtual board (serve it on a pseudo-terminal, run scenarios)."""
from pumpctl.cli import register


def setup(p):
    sub = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)
    sub.add_parser("info", help="what the virtual board is")
    run_args(sub.add_parser("run", help="run a scenario file in virtual time, write a report",
                            description="Run a scenario (docs/simulation.md) on the virtual board in virtual time."))


def handle(args):
    if args.sim_command == "info":
        print("virtual board: the unmodified device code on the MicroPython VM, simulated machine/time")
    if args.sim_command == "run":
        return run_scenario(args)
    return 0


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
