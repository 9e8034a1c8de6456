"""A file-backed NOR flash block device for the real LittleFS driver (os.VfsLfs2).

Implements MicroPython's extended block-device protocol, as rp2.Flash does:
`readblocks(n, buf, offset)`, `writeblocks(n, buf, offset)` (program only; no
offset = erase + program whole blocks, the simple protocol) and `ioctl(op, arg)`
with 1 init, 2 deinit, 3 sync, 4 block count, 5 block size, 6 erase.
4096-byte blocks like the rp2; the filesystem is made with progsize=256 as the
rp2 port's _boot.py does. Programming ANDs bits into the cell as NOR flash does
(`reprograms` counts programs over non-erased bytes).

Power cuts: with `cut_at=k` the k-th flash-changing operation (program or erase,
counted from 1 in `ops`) does not happen (or, with `tear=True`, only its first
half does) and the image is frozen: every later program/erase is ignored and
reads return the frozen image. Nothing is raised: an exception thrown through
LittleFS's C code leaves its files half-closed, and their GC finalisers later
ran on freed LittleFS buffers and broke another, live mount in the same VM. The
code under test keeps running against a dead flash; the test checks `frozen`
after each step (a step that returns once frozen was not acknowledged), then
mounts a fresh VfsLfs2 on a copy of the image, like a board powering up again.

Backed by a host file, so a 128 KB image costs no heap and can be copied.
"""
import binascii
import os

BLOCK = 4096
PROGSIZE = 256
_ERASED = b"\xff" * BLOCK


def tmpdir():
    return os.getenv("TMPDIR") or "/tmp"


def unique(prefix):
    return prefix + binascii.hexlify(os.urandom(4)).decode()


class FlashSim:
    def __init__(self, path, cut_at=0, tear=False):
        self.path = path
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.blocks = self.f.tell() // BLOCK
        self.cut_at = cut_at
        self.tear = tear
        self.ops = 0
        self.programs = 0
        self.erases = 0
        self.reprograms = 0
        self.frozen = False
        self._scratch = bytearray(BLOCK)

    @classmethod
    def blank(cls, path, blocks, **kw):
        with open(path, "wb") as f:
            for _ in range(blocks):
                f.write(_ERASED)
        return cls(path, **kw)

    def close(self):
        self.f.close()

    def _cut(self):
        """Count one flash-changing operation; True if it must not happen."""
        if self.frozen:
            return True
        self.ops += 1
        if self.cut_at and self.ops >= self.cut_at:
            self.frozen = True
            return True
        return False

    def readblocks(self, block, buf, offset=0):
        self.f.seek(block * BLOCK + offset)
        self.f.readinto(buf)

    def _program(self, addr, buf, n):
        old = memoryview(self._scratch)[:n]
        self.f.seek(addr)
        self.f.readinto(old)
        if bytes(old) != _ERASED[:n]:
            self.reprograms += 1
            for i in range(n):
                old[i] &= buf[i]
            buf = old
        self.f.seek(addr)
        self.f.write(buf[:n])

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # simple protocol: erase then program whole blocks
            n = len(buf) // BLOCK
            for i in range(n):
                self.ioctl(6, block + i)
                self.writeblocks(block + i, memoryview(buf)[i * BLOCK:(i + 1) * BLOCK], 0)
            return 0
        if self._cut():
            if self.tear and self.ops == self.cut_at:
                self._program(block * BLOCK + offset, buf, len(buf) // 2)
            return 0
        self.programs += 1
        self._program(block * BLOCK + offset, buf, len(buf))
        return 0

    def _erase(self, block, n):
        self.f.seek(block * BLOCK)
        self.f.write(_ERASED[:n])

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return BLOCK
        if op == 6:
            if self._cut():
                if self.tear and self.ops == self.cut_at:
                    self._erase(arg, BLOCK // 2)
                return 0
            self.erases += 1
            self._erase(arg, BLOCK)
            return 0
        return 0  # init, deinit, sync: nothing to do for a file


def copy_image(src, dst):
    buf = bytearray(BLOCK)
    with open(src, "rb") as a, open(dst, "wb") as b:
        while a.readinto(buf) == BLOCK:
            b.write(buf)


def mkfs(dev):
    os.VfsLfs2.mkfs(dev, progsize=PROGSIZE)


def mount(dev, point):
    os.mount(os.VfsLfs2(dev, progsize=PROGSIZE), point)


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


# --- a scratch directory for tests that run on both interpreters ----------

_mounted = {}


def scratch(blocks=48):
    """A fresh empty directory: on the VM the root of a new LittleFS on a
    FlashSim (the real driver), on CPython a temporary host directory."""
    import sys

    if sys.implementation.name != "micropython":
        import tempfile

        return tempfile.mkdtemp(prefix="dosekit_")
    image = tmpdir() + "/" + unique("dosekit_flash_") + ".img"
    dev = FlashSim.blank(image, blocks)
    mkfs(dev)
    point = "/" + unique("fs")
    mount(dev, point)
    _mounted[point] = (dev, image)
    return point


def release(root):
    """Undo scratch(): unmount and delete the image, or remove the host directory."""
    if root in _mounted:
        dev, image = _mounted.pop(root)
        os.umount(root)
        dev.close()
        remove(image)
        return
    import shutil

    shutil.rmtree(root, ignore_errors=True)
