"""Runs device test modules on the MicroPython VM (it has no unittest).

Usage (from the MicroPython VM): micropython vmrun.py test_dose [test_x ...]
Every function named test_* in each module is called; a failing assert is a
failure, vmtest.SkipTest a skip. The last line is the plain
'N passed, N failed' summary that tools/run_device_tests.py aggregates.
"""
import sys
import gc

import vmtest


def run_module(name, counts):
    try:
        mod = __import__(name)
    except Exception as e:
        print("ERROR", name, "import failed:")
        sys.print_exception(e)
        counts[1] += 1
        return
    names = sorted(n for n in dir(mod) if n.startswith("test_"))
    for n in names:
        fn = getattr(mod, n)
        gc.collect()
        try:
            fn()
        except vmtest.SkipTest as e:
            counts[2] += 1
            print("SKIP", name + "." + n, e)
        except Exception as e:  # report every failure, keep going
            counts[1] += 1
            print("FAIL", name + "." + n)
            sys.print_exception(e)
        else:
            counts[0] += 1
            print("ok  ", name + "." + n)


def main(argv):
    counts = [0, 0, 0]
    for name in argv:
        run_module(name, counts)
    print("%d passed, %d failed, %d skipped" % (counts[0], counts[1], counts[2]))
    sys.exit(1 if counts[1] else 0)


main(sys.argv[1:])
