"""Wall-clock time on boards without a battery-backed clock.

rp2's RTC resets at power-on and ESP32's does not survive power-off, so the
host sets the time on every connection. The device persists the last known
wall time; after a reset without a host it carries on from that time plus
uptime (schedules keep running, late rather than never) and says so with a
low-priority "clock not confirmed" alert until a host sets the time again.

Wall time is integer seconds since 2000-01-01 (MicroPython's epoch on boards);
uptime is milliseconds from the main loop's own monotonic counter.
"""


class WallClock:
    def __init__(self):
        self._base_wall = 0  # wall seconds at uptime _base_ms
        self._base_ms = 0
        self.confirmed = False  # set by a host since this boot
        self.known = False  # any wall time at all (host or persisted)

    def set(self, wall_s, uptime_ms):
        """A host told us the time."""
        if wall_s < 0:
            raise ValueError("wall time must be seconds since 2000-01-01, got %d" % wall_s)
        self._base_wall = wall_s
        self._base_ms = uptime_ms
        self.confirmed = True
        self.known = True

    def resume_from(self, persisted_wall_s, uptime_ms):
        """Boot without a host: continue from the last persisted time, unconfirmed."""
        if persisted_wall_s:
            self._base_wall = persisted_wall_s
            self._base_ms = uptime_ms
            self.known = True
        self.confirmed = False

    def now(self, uptime_ms):
        """Wall seconds now, or 0 when no time was ever known."""
        if not self.known:
            return 0
        return self._base_wall + (uptime_ms - self._base_ms) // 1000

    def ms_until(self, wall_s, uptime_ms):
        """Milliseconds from uptime `uptime_ms` to the start of wall second `wall_s`
        (exact to the ms, unlike subtracting whole seconds)."""
        return (wall_s - self._base_wall) * 1000 - (uptime_ms - self._base_ms)
