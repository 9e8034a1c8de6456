"""Device output that never blocks: a bounded queue of lines drained as the port accepts.

    w = Writer(write, writable)   # write(buf) -> bytes taken (None: all); writable() -> bool
    w.reply(b'{"id":1,"ok":{}}\\n')
    w.event(b'{"ev":"state",...}\\n')
    w.drain()                     # from the main loop; True while output is pending

- `write` is called only when `writable()` says the port takes more (select.poll
  POLLOUT on sys.stdout on a board), and with at most `chunk` bytes: a USB CDC port
  that has room for one byte may still block for the rest (rp2: up to ~500 ms when a
  host holds DTR but does not read), so small chunks bound that. A partial write
  keeps its place; a line is never interleaved with another.
- At most `cap` bytes are queued. A line that does not fit drops the oldest
  *events* first, then the oldest replies (never the line being written); a line
  longer than `cap` is dropped itself. Every drop is counted (`dropped`); before the
  next line goes out the host gets {"ev":"dropped","n":N,"total":T}.
- A line is bytes or a list of pages (`Pages`, <= 64 bytes each): the protocol builds
  replies in pages, so no allocation is bigger than a page however long the reply
  (the VM heap of the test rig fragments down to ~300-byte free runs).
- No allocation while draining except a memoryview per chunk written.
"""
from micropython import const

_CAP = const(2048)
_CHUNK = const(64)


class Writer:
    def __init__(self, write, writable, cap=_CAP, chunk=_CHUNK):
        self._write = write
        self._writable = writable
        self.cap = cap
        self.chunk = chunk
        self._q = []  # [is_event, pages, size], oldest first
        self._size = 0
        self._page = -1  # index of the head line's page being written (-1: not started)
        self._off = 0
        self.dropped = 0  # lines dropped since boot
        self._unreported = 0

    @property
    def pending(self):
        return self._size > 0 or self._unreported > 0

    def reply(self, line, size=None):
        """Queue a line: bytes, or a list of byte pages (Pages) with its total size."""
        self._put(False, line, size)

    def event(self, line, size=None):
        self._put(True, line, size)

    def _put(self, is_event, line, n):
        if n is None:
            n = len(line)
            line = [line]
        if n > self.cap:
            self._drop(1)
            return
        q = self._q
        # Make room: events before replies, oldest first, never the head being written.
        for want_event in (True, False):
            i = 1 if self._page >= 0 else 0
            while self._size + n > self.cap and i < len(q):
                if q[i][0] == want_event:
                    self._size -= q.pop(i)[2]
                    self._drop(1)
                else:
                    i += 1
        if self._size + n > self.cap:  # only the head in flight is left and it is big
            self._drop(1)
            return
        q.append([is_event, line, n])
        self._size += n

    def _drop(self, k):
        self.dropped += k
        self._unreported += k

    def drain(self):
        """Write what the port accepts now; never waits. True while output remains."""
        q = self._q
        while (q or self._unreported) and self._writable():
            if self._page < 0:
                if self._unreported:
                    # At a line boundary: tell the host what it missed, first.
                    note = b'{"ev":"dropped","n":%d,"total":%d}\n' % (self._unreported, self.dropped)
                    self._unreported = 0
                    q.insert(0, [True, [note], len(note)])
                    self._size += len(note)
                self._page = 0
                self._off = 0
            item = q[0]
            page = item[1][self._page]
            end = self._off + self.chunk
            if end > len(page):
                end = len(page)
            k = self._write(memoryview(page)[self._off:end])
            if k is None:
                k = end - self._off
            if k <= 0:
                break
            self._off += k
            if self._off >= len(page):
                self._page += 1
                self._off = 0
                if self._page >= len(item[1]):
                    self._size -= item[2]
                    q.pop(0)
                    self._page = -1
        return self.pending


class Pages:
    """A line built from small pieces into 64-byte pages: no allocation bigger than a
    page, so a long reply fits a fragmented heap. write(str) appends."""

    def __init__(self):
        self.pages = []
        self.size = 0

    def write(self, s):
        b = s.encode()
        i = 0
        n = len(b)
        while i < n:
            used = self.size % _CHUNK
            if not used:
                self.pages.append(bytearray(_CHUNK))
            k = min(_CHUNK - used, n - i)
            self.pages[-1][used:used + k] = b[i:i + k]
            self.size += k
            i += k

    def close(self):
        """Trim the last page (a bytearray slice copy of at most 64 bytes)."""
        used = self.size % _CHUNK
        if used:
            self.pages[-1] = self.pages[-1][:used]
