"""The virtual board's flash: a file-backed block device for the real LittleFS driver.

Implements MicroPython's extended block-device protocol as rp2.Flash does
(`readblocks(n, buf, offset)`, `writeblocks(n, buf, offset)`, `ioctl(op, arg)`
with 4 block count, 5 block size, 6 erase), 4096-byte blocks and progsize=256
as the rp2 port's _boot.py. The image is a host file, so the board's
filesystem outlives VM restarts (soft reset, power loss) and costs no VM heap.

The same approach as tests/device/flashsim.py, without its power-cut machinery.
Runs on the MicroPython VM (vmboot.py); `blank()` also runs on CPython, so the
supervisor can create an image without a VM.
"""
import os

BLOCK = 4096
PROGSIZE = 256
PICO_BLOCKS = 352  # the Pico's filesystem: 1.4 MB
_ERASED = b"\xff" * BLOCK


def blank(path, blocks=PICO_BLOCKS):
    """An erased flash image (every byte 0xff)."""
    with open(path, "wb") as f:
        for _ in range(blocks):
            f.write(_ERASED)


class LfsImage:
    """The block device. Its methods run inside LittleFS's C code, so they have no
    branches or loops: the VM raises a pending KeyboardInterrupt (Ctrl-C, SIGINT) only
    at a jump, and one raised through the C code would leave the filesystem's
    state half-updated (on a board the block device is C and cannot be
    interrupted). The interrupt is raised in the caller once the operation is done."""

    def __init__(self, path):
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.blocks = self.f.tell() // BLOCK
        self._erased = _ERASED
        zero = lambda arg: 0  # noqa: E731
        # ioctl ops: 1 init, 2 deinit, 3 sync, 4 block count, 5 block size, 6 erase
        self._ops = (zero, zero, zero, self._sync, lambda arg: self.blocks, lambda arg: BLOCK, self._erase)

    def readblocks(self, block, buf, offset=0):
        self.f.seek(block * BLOCK + offset)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, offset=0):
        # LittleFS always passes the offset (the extended protocol) and erases first
        self.f.seek(block * BLOCK + offset)
        self.f.write(buf)
        return 0

    def ioctl(self, op, arg):
        return self._ops[op](arg)

    def _sync(self, arg):
        self.f.flush()
        return 0

    def _erase(self, block):
        self.f.seek(block * BLOCK)
        self.f.write(self._erased)
        return 0

    def close(self):
        self.f.close()


def mount(dev, point="/"):
    """Mount an LfsImage at `point`, formatting it first if it holds no filesystem
    (as a board's _boot.py does)."""
    try:
        vfs = os.VfsLfs2(dev, progsize=PROGSIZE)
    except OSError:
        os.VfsLfs2.mkfs(dev, progsize=PROGSIZE)
        vfs = os.VfsLfs2(dev, progsize=PROGSIZE)
    os.mount(vfs, point)
