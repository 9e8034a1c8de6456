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
    def __init__(self, path):
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.blocks = self.f.tell() // BLOCK

    def readblocks(self, block, buf, offset=0):
        self.f.seek(block * BLOCK + offset)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # simple protocol: erase, then program whole blocks
            offset = 0
        self.f.seek(block * BLOCK + offset)
        self.f.write(buf)
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return BLOCK
        if op == 6:
            self.f.seek(arg * BLOCK)
            self.f.write(_ERASED)
            return 0
        if op == 3:
            self.f.flush()
        return 0  # init, deinit: nothing to do for a file

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
