"""pumpctl command line: a table of subcommands, each (handler, argument setup).

`pumpctl sim serve|run|info` drive the virtual board; board commands (ports, flash,
status, config, program, logs) with the CLI issue.
"""
import argparse
import sys

COMMANDS = {}  # name -> (setup(parser), handler(args) -> exit code, help)


def register(name, help_text, setup, handler):
    """Add a subcommand: setup(argparse parser), handler(args) -> exit code."""
    COMMANDS[name] = (setup, handler, help_text)


def build_parser():
    ap = argparse.ArgumentParser(prog="pumpctl", description="Configure, program and monitor dosekit pumps.")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name, (setup, _handler, help_text) in sorted(COMMANDS.items()):
        setup(sub.add_parser(name, help=help_text, description=help_text))
    return ap


def main(argv=None):
    # Subcommand modules register themselves on import.
    from pumpctl import sim_commands  # noqa: F401
    from pumpctl import board_commands  # noqa: F401
    from pumpctl import flash_commands  # noqa: F401
    from pumpctl import therapy_commands  # noqa: F401

    ap = build_parser()
    args = ap.parse_args(argv)
    if not args.command:
        ap.print_help()
        return 2
    _setup, handler, _help = COMMANDS[args.command]
    try:
        return handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as e:
        print("pumpctl: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
