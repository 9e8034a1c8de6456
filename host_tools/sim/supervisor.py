"""The virtual board's USB link: the MicroPython VM behind a pseudo-terminal that
behaves like a board's USB CDC serial port (docs/usb-link.md).

    user (mpremote, pumpctl, a terminal)
        |  /dev/pts/N  <- the board's "serial port" (user pty)
    Supervisor (CPython, one I/O thread)
        |  a private pty per VM life, slave side raw
    micropython -i vmboot.py  (the unmodified device code, simulated machine/time/select)

What the supervisor does that a board's USB stack and reset logic do:
- Soft reset. The unix VM exits where a board soft-reboots (Ctrl-D in the REPL,
  sys.exit()); the supervisor prints "MPY: soft reboot", starts a new VM on the
  same flash image and runs boot.py always and main.py only if the board was not
  in the raw REPL; after a raw-REPL soft reset it puts the new VM back into the
  raw REPL. machine.reset() (exit status != 0) is a hard reset: main.py runs.
- Ctrl-C. In raw tty mode 0x03 is an ordinary byte to the VM, so while the VM
  runs Python code (its SIGINT handler is installed) the supervisor sends
  SIGINT instead, as a board's USB IRQ raises KeyboardInterrupt; while the VM
  waits at a REPL prompt (no handler) the byte goes through, as on a board.
- Output never blocks the VM: its side is always drained into a bounded buffer;
  while nobody has the port open the output is dropped, as a board drops USB
  output without DTR, so the next connection sees no stale bytes. Bare "\\n" are
  written as "\\r\\n", as MicroPython's stdout does on a board.
- User input is held while the board resets (no USB device during a reset).
"""
import errno
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

HERE = Path(__file__).resolve().parent  # host_tools/sim
ROOT = HERE.parent.parent
VMBOOT = HERE / "vmboot.py"
UP_MARK = b"\x1b_dk:up\x1b\\"
REPL_MARK = b"\x1b_dk:repl\x1b\\"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
PWRON_RESET, WDT_RESET = 1, 3  # vboard.machine; rp2's machine.reset() is a watchdog reset
OUT_CAP = 1 << 20  # user-side buffer; beyond it output is dropped (a host that stops reading)
HISTORY = 1 << 16
# A Pico has ~240 KB free after boot; the 64-bit VM's objects are about twice a 32-bit
# board's, so 192K (the device suite's heap) leaves mpremote too little once the pump
# is loaded (163 KB in use at the prompt after Ctrl-C). 384K is about a Pico.
DEFAULT_HEAP = "384K"
BOOT_TIMEOUT = 20.0  # a VM that never reaches vmboot's marker: show what it printed


def micropython():
    exe = Path(sys.executable).parent / "micropython"
    if not exe.exists():
        exe = ROOT / ".venv" / "bin" / "micropython"
    return str(exe) if exe.exists() else "micropython"


def vm_env(extra):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(HERE / "shadow"), str(HERE), ".frozen"])
    env.update(extra)
    return env


# --- the board filesystem image and what goes onto it -----------------------

def deployment(use_mpy=True):
    """(host source, board path) for a fresh virtual board: main.py, the pump package
    (compiled .mpy for the VM, as a board would hold them) and boards/virtual.py as board.py."""
    files = [(ROOT / "device" / "main.py", "main.py"), (ROOT / "boards" / "virtual.py", "board.py")]
    if use_mpy:
        sys.path.insert(0, str(ROOT / "tools"))
        try:
            from build_mpy import build_for_vm
        finally:
            sys.path.pop(0)
        out = build_for_vm()
        files += [(p, p.relative_to(out).as_posix()) for p in sorted((out / "pump").glob("*.mpy"))]
    else:
        files += [(p, "pump/" + p.name) for p in sorted((ROOT / "device" / "pump").glob("*.py"))]
    return files


def new_image(path, blocks=None):
    sys.path.insert(0, str(HERE))
    try:
        from vboard import lfsimage
    finally:
        sys.path.pop(0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lfsimage.blank(str(path), blocks or lfsimage.PICO_BLOCKS)


# --- where pumpctl finds served boards ----------------------------------------

def registry_dir():
    """$DOSEKIT_BOARDS_DIR, else $XDG_RUNTIME_DIR/dosekit/boards, else ~/.cache/dosekit/boards."""
    if os.environ.get("DOSEKIT_BOARDS_DIR"):
        return Path(os.environ["DOSEKIT_BOARDS_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "dosekit" / "boards"
    return Path.home() / ".cache" / "dosekit" / "boards"


def data_dir():
    """Where flash images live: $DOSEKIT_DATA_DIR, else ~/.cache/dosekit."""
    if os.environ.get("DOSEKIT_DATA_DIR"):
        return Path(os.environ["DOSEKIT_DATA_DIR"])
    return Path.home() / ".cache" / "dosekit"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_boards():
    """Served virtual boards: [{"name", "port", "pid", "image", ...}]; stale entries removed."""
    boards = []
    d = registry_dir()
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            info = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(int(info.get("pid", 0))) or not os.path.exists(info.get("port", "")):
            try:
                f.unlink()
            except OSError:
                pass
            continue
        boards.append(info)
    return boards


# --- the supervisor -------------------------------------------------------------

def _sigint_caught(pid):
    """True if the VM has its SIGINT handler installed (it is running Python code)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        pass
    return False


class Supervisor:
    """A virtual board served on a pseudo-terminal. start(); .port; stop().

    speed: 0 = virtual time (as fast as the VM runs); > 0 = real time times speed.
    deploy: deploy the firmware onto the image at start (default: when the image is new).
    """

    def __init__(self, image, heap=DEFAULT_HEAP, speed=1.0, deploy=None, fresh=False, use_mpy=True,
                 log=None):
        self.image = Path(image)
        self.heap = heap
        self.speed = speed
        self.use_mpy = use_mpy
        self.log = log  # callable(str): supervisor events (resets), or None
        if fresh or not self.image.exists():
            new_image(self.image)
            deploy = True if deploy is None else deploy
        self._deploy = bool(deploy)
        self.port = None
        self.vm = None  # subprocess.Popen of the current VM
        self.boots = []  # (kind, run_main) per VM start: "power-on", "soft", "hard", "restart"
        self.dropped = 0  # output bytes dropped (nobody connected, or a host that stopped reading)
        self.raw = False  # the VM is in the raw REPL (from its output)
        self.history = bytearray()  # the last HISTORY bytes of output, connected or not
        self._lock = threading.Lock()
        self._stop = False
        self._thread = None
        self._user = None  # master fd of the user pty
        self._vm_fd = None  # master fd of the current VM's pty
        self._vm_slave = None  # its slave fd (the VM's stdin/stdout), kept open here too
        self._pidfd = None  # readable when the VM exits
        self._state = "off"  # "booting", "swallow" (raw restart: hide the banner), "up"
        self._boot_t = 0.0
        self._scan = b""  # output held while looking for a marker
        self._tail = b""  # last output bytes, for banner tracking
        self._out = bytearray()  # to the user
        self._to_vm = bytearray()
        self._held = bytearray()  # user input while the board resets
        self._last_cr = False
        self._last_sigint = 0.0
        self._sigint_sent = 0.0
        self._connected = False
        self._manifest = None

    # --- lifecycle ---------------------------------------------------------------
    def start(self):
        m, s = pty.openpty()
        tty.setraw(s)
        self.port = os.ttyname(s)
        os.close(s)  # nobody connected until someone opens the port: POLLHUP on the master
        os.set_blocking(m, False)
        self._user = m
        self._wake_r, self._wake_w = os.pipe()
        self._spawn("power-on", True, PWRON_RESET)
        self._thread = threading.Thread(target=self._loop, name="vboard-supervisor", daemon=True)
        self._thread.start()
        return self.port

    def stop(self, timeout=5.0):
        """Power off: the VM is killed (LittleFS is power-safe), the port disappears."""
        self._stop = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout)
        self._kill_vm()
        for fd in (self._user, self._wake_r, self._wake_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._user = None
        if self._manifest:
            try:
                os.unlink(self._manifest)
            except OSError:
                pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait_booted(self, timeout=20.0):
        """Wait until the current VM has mounted its filesystem (boot.py/main.py/REPL)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._state in ("boot-run", "up"):
                return True
            time.sleep(0.02)
        return False

    def _note(self, msg):
        if self.log is not None:
            self.log(msg)

    # --- the VM ---------------------------------------------------------------------
    def _spawn(self, kind, run_main, reset_cause):
        m, s = pty.openpty()
        tty.setraw(s)
        extra = {"DOSEKIT_IMAGE": str(self.image), "DOSEKIT_MAIN": "1" if run_main else "0",
                 "DOSEKIT_SPEED": repr(float(self.speed)), "DOSEKIT_RESET": str(reset_cause),
                 "DOSEKIT_DEPLOY": ""}
        if self._deploy:
            import tempfile

            fd, path = tempfile.mkstemp(prefix="dosekit_deploy_", suffix=".txt")
            with os.fdopen(fd, "w") as f:
                for src, dest in deployment(self.use_mpy):
                    f.write("%s\t%s\n" % (src, dest))
            self._manifest = path
            extra["DOSEKIT_DEPLOY"] = path
            self._deploy = False
        cmd = [micropython(), "-X", "heapsize=" + self.heap, "-i", str(VMBOOT)]
        self.vm = subprocess.Popen(cmd, stdin=s, stdout=s, stderr=s, env=vm_env(extra),
                                   cwd=str(HERE), close_fds=True, start_new_session=True)
        # The supervisor keeps the slave open too: what the VM had not read when it
        # exited stays readable there and goes to the next VM, as bytes wait in a
        # board's USB buffer across a soft reset.
        # (A file description of its own: O_NONBLOCK on the VM's would break its reads.)
        self._vm_slave = os.open(os.ttyname(s), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        os.close(s)
        os.set_blocking(m, False)
        self._vm_fd = m
        try:
            self._pidfd = os.pidfd_open(self.vm.pid)
        except (AttributeError, OSError):
            self._pidfd = None  # no pidfd: the loop polls vm.poll() every 50 ms
        self._state = "booting"
        self._boot_t = time.monotonic()
        self._scan = b""
        self._to_vm = bytearray()
        self._raw_after_boot = not run_main and kind == "soft"
        self.boots.append((kind, run_main))
        self._note("VM %s boot (pid %d, main.py %s)" % (kind, self.vm.pid, "runs" if run_main else "skipped"))

    def _kill_vm(self):
        vm = self.vm
        if vm is not None and vm.poll() is None:
            vm.kill()
            try:
                vm.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._close_vm_fds()

    def _close_vm_fds(self):
        for fd in (self._vm_fd, self._vm_slave, self._pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._vm_fd = self._vm_slave = self._pidfd = None

    def _vm_exited(self):
        """The VM process ended: reboot the board as a board would."""
        vm = self.vm
        try:
            rc = vm.wait(5)
        except subprocess.TimeoutExpired:
            vm.kill()
            rc = vm.wait(5)
        while True:  # what it printed last
            try:
                data = os.read(self._vm_fd, 65536)
            except OSError:
                break
            if not data:
                break
            self._from_vm(data)
        self._flush_scan()
        unread = bytearray()
        while True:  # what it had not read yet: input for the next VM
            try:
                data = os.read(self._vm_slave, 65536)
            except OSError:
                break
            if not data:
                break
            unread += data
        unread += self._to_vm
        self._close_vm_fds()
        if self._stop:
            return
        self._held[:0] = unread
        raw = self.raw
        if rc == -signal.SIGINT:
            # Ctrl-C raced the end of a command: the VM was already back at a prompt,
            # where a board would have taken 0x03 as a byte. Restart in the same mode.
            self._note("VM ended by a late SIGINT; restarting at the prompt")
            self._spawn("soft" if raw else "restart", False, self._last_cause())
            return
        if rc == 0:  # Ctrl-D at a prompt, sys.exit(): soft reset
            self._emit(SOFT_REBOOT)
            self._spawn("soft", not raw, self._last_cause())
        else:  # machine.reset() (SystemExit with a message), a crash: hard reset
            self._note("VM exit status %s: hard reset" % rc)
            self.raw = False
            self._spawn("hard", True, WDT_RESET)

    def _last_cause(self):
        kinds = [k for k, _ in self.boots]
        return WDT_RESET if "hard" in kinds[-1:] else PWRON_RESET

    # --- output: VM -> user -------------------------------------------------------------
    def _emit(self, data):
        """Cooked output to the user side (bounded; dropped while nobody is connected)."""
        if not data:
            return
        head = b""
        if self._last_cr and data[:1] == b"\n":
            head, data = b"\n", data[1:]
        out = head + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self._last_cr = out.endswith(b"\r")
        self._track(out)
        self.history += out
        if len(self.history) > HISTORY:
            del self.history[:-HISTORY]
        if not self._connected:
            self.dropped += len(out)
            return
        room = max(OUT_CAP - len(self._out), 0)
        if room < len(out):
            self.dropped += len(out) - room
            out = out[:room]
        self._out += out

    def _track(self, out):
        t = self._tail + out
        if RAW_BANNER in t or FRIENDLY_BANNER in t:
            self.raw = t.rfind(RAW_BANNER) > t.rfind(FRIENDLY_BANNER)
        self._tail = t[-64:]

    def _from_vm(self, data):
        if self._state == "up":
            self._emit(data)
            return
        self._scan += data
        if self._state == "booting":
            i = self._scan.find(UP_MARK)
            if i < 0:
                return
            self._emit(self._scan[:i])  # anything the VM printed before (errors)
            rest = self._scan[i + len(UP_MARK):]
            self._scan = b""
            self._state = "boot-run"
            if not self._raw_after_boot:
                self._release_held()
            self._from_vm(rest)
            return
        if self._state == "boot-run":
            i = self._scan.find(REPL_MARK)
            if i < 0:
                # boot.py/main.py output passes through; hold only a possible partial marker
                j = self._scan.rfind(b"\x1b", max(len(self._scan) - len(REPL_MARK) + 1, 0))
                if j >= 0 and REPL_MARK.startswith(self._scan[j:]):
                    self._emit(self._scan[:j])
                    self._scan = self._scan[j:]
                else:
                    self._emit(self._scan)
                    self._scan = b""
                return
            self._emit(self._scan[:i])
            rest = self._scan[i + len(REPL_MARK):]
            self._scan = b""
            if self._raw_after_boot:
                self._state = "swallow"  # the friendly banner: a board would be in raw mode
                self._from_vm(rest)
            else:
                self._state = "up"
                self._emit(rest)
            return
        if self._state == "swallow":
            i = self._scan.find(b">>> ")
            if i < 0:
                return
            rest = self._scan[i + 4:]
            self._scan = b""
            self._state = "up"
            self._to_vm[:0] = b"\x01"  # into the raw REPL, as a board that soft-reset there
            self._emit(rest)
            self._release_held()

    def _flush_scan(self):
        if self._scan and self._state != "swallow":
            self._emit(self._scan)
        self._scan = b""

    # --- input: user -> VM -------------------------------------------------------------
    def _release_held(self):
        if self._held:
            data = bytes(self._held)
            self._held = bytearray()
            self._from_user(data)

    def _from_user(self, data):
        if self._state in ("booting", "swallow") or (self._state == "boot-run" and self._raw_after_boot):
            self._held += data  # the board is resetting
            return
        parts = data.split(b"\x03")
        for i, part in enumerate(parts):
            if i:
                self._ctrl_c()
            self._to_vm += part

    def _ctrl_c(self):
        """0x03 as a board takes it: KeyboardInterrupt while code runs, else a byte."""
        vm = self.vm
        now = time.monotonic()
        if vm is not None and vm.poll() is None and _sigint_caught(vm.pid):
            # The unix VM exits on a second SIGINT while the first is still pending:
            # one interrupt per 50 ms is what a user can type anyway.
            if now - self._last_sigint < 0.05:
                return
            self._last_sigint = now
            self._write_vm()  # bytes typed before the Ctrl-C arrive first
            os.kill(vm.pid, signal.SIGINT)
            self._note("Ctrl-C -> SIGINT")
            return
        self._to_vm += b"\x03"

    def _write_vm(self):
        if not self._to_vm or self._vm_fd is None or self._state not in ("boot-run", "up"):
            return
        try:
            n = os.write(self._vm_fd, bytes(self._to_vm[:4096]))
        except BlockingIOError:
            return
        except OSError:
            return
        del self._to_vm[:n]

    # --- the I/O loop ------------------------------------------------------------------
    def _loop(self):
        user = self._user
        probe = select.poll()
        probe.register(user, select.POLLIN)
        while not self._stop:
            # POLLHUP on the master while nobody has the port open (no DTR on a board)
            connected = not any(e & select.POLLHUP for _, e in probe.poll(0))
            p = select.poll()
            p.register(self._wake_r, select.POLLIN)
            if connected:
                p.register(user, select.POLLIN | (select.POLLOUT if self._out else 0))
            vm_fd = self._vm_fd
            if vm_fd is not None:
                want = self._to_vm and self._state in ("boot-run", "up")
                p.register(vm_fd, select.POLLIN | (select.POLLOUT if want else 0))
            if self._pidfd is not None:
                p.register(self._pidfd, select.POLLIN)
            timeout = 50
            if connected and self._state in ("boot-run", "up") and self._pidfd is not None:
                timeout = 1000
            try:
                events = p.poll(timeout)
            except InterruptedError:
                continue
            with self._lock:
                self._service(dict(events), user, vm_fd, connected)

    def _disconnected(self):
        """The last user closed the port: what it did not read must not greet the next one."""
        self._out = bytearray()
        try:
            fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        finally:
            os.close(fd)

    def _service(self, ev, user, vm_fd, connected):
        if self._wake_r in ev:
            try:
                os.read(self._wake_r, 64)
            except OSError:
                pass
        if self._stop:
            return
        if connected != self._connected:
            self._connected = connected
            if not connected:
                self._disconnected()
        uev = ev.get(user, 0)
        if uev & select.POLLIN:
            try:
                data = os.read(user, 4096)
            except OSError:
                data = b""
            if data:
                self._from_user(data)
        if self._out and self._connected:
            try:
                n = os.write(user, bytes(self._out[:65536]))
                del self._out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
        if vm_fd is None:
            return
        if ev.get(vm_fd, 0) & select.POLLIN:
            for _ in range(16):  # drain: the VM must never block on a full pty
                try:
                    data = os.read(vm_fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self._from_vm(data)
        if (self._pidfd in ev) if self._pidfd is not None else (self.vm.poll() is not None):
            self._vm_exited()
            return
        self._write_vm()
        if self._state == "booting" and time.monotonic() - self._boot_t > BOOT_TIMEOUT:
            self._note("no boot marker after %.0f s; passing output through" % BOOT_TIMEOUT)
            self._state = "up"
            self._flush_scan()
            self._release_held()


def serve(name="virtual", image=None, heap=DEFAULT_HEAP, speed=1.0, fresh=False, quiet=False):
    """`pumpctl sim serve`: a virtual board on a pseudo-terminal until Ctrl-C/SIGTERM."""
    image = Path(image) if image else data_dir() / "boards" / (name + ".img")
    say = (lambda m: None) if quiet else (lambda m: print(m, flush=True))
    sup = Supervisor(image, heap=heap, speed=speed, fresh=fresh,
                     log=None if quiet else (lambda m: print("[vboard] " + m, flush=True)))
    reg = registry_dir()
    reg.mkdir(parents=True, exist_ok=True)
    entry = reg / (name + ".json")
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        port = sup.start()
        entry.write_text(json.dumps({"name": name, "port": port, "pid": os.getpid(), "image": str(image),
                                     "speed": speed, "board": "virtual", "started": time.time()}))
        if quiet:
            print(port, flush=True)
        say("virtual board '%s' on %s" % (name, port))
        say("  flash image: %s" % image)
        say("  time: %s" % ("virtual (as fast as the VM runs)" if not speed else "real time x %g" % speed))
        say("  connect:  mpremote connect %s" % port)
        say("  registry: %s" % entry)
        say("Ctrl-C here powers the board off.")
        while not stop.wait(0.5):
            pass
    finally:
        sup.stop()
        try:
            entry.unlink()
        except OSError:
            pass
        for s, h in old.items():
            signal.signal(s, h)
    return 0
