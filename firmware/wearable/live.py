"""Live posture packets (SAMPLES_LIVE): samples gathered into MTU-sized packets, then notified.

Samples are packed as they come into a private buffer (proto.pack_sample), so a backfill can use
the BLE layer's posture buffer in between. A packet goes out when it holds samples_per_packet()
samples (sized from the smallest MTU among encrypted links), when its oldest sample is
`latency_ms` old, or when the next sample would break it (a different period or boot, or a seq or
t_ms that does not continue it: protocol §5). Sending copies the packet into link.posture_buf
through a memoryview cached per length (slice assignment from a view allocates nothing) and calls
send_posture(). A packet that reached no link is handed to the delivery tracker as undelivered,
so the host can fetch it with REQUEST_RAW; nothing is retried here.

While no link is encrypted nothing is gathered: add() reports the sample undelivered at once.
"""

from wearable import proto

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_M = const(0xFFFFFFFF)
LATENCY_MS = const(250)


class Live:
    def __init__(self, link, delivery, boot_id, latency_ms=LATENCY_MS):
        self.link = link
        self.delivery = delivery
        self.boot_id = boot_id
        self.latency_ms = latency_ms
        self.buf = bytearray(proto.MAX_PAYLOAD)
        self._mv = memoryview(self.buf)
        self._views = {}  # packet length -> memoryview of buf
        self.n = 0
        self.seq0 = 0
        self.t0 = 0
        self.period = 0
        self.packets = 0
        self.samples = 0
        self.failed = 0  # packets that reached no link

    def add(self, seq, t_ms, period, flexion, lateral, rotation, flags):
        link = self.link
        if link is None or not link.streaming():
            if self.n:
                self.flush()
            self.delivery.undelivered(seq, seq)
            return
        n = self.n
        if n and (period != self.period or seq != ((self.seq0 + n) & _M)
                  or t_ms != ((self.t0 + n * period) & _M)):
            self.flush()
            n = 0
        if n == 0:
            self.seq0 = seq
            self.t0 = t_ms
            self.period = period
        proto.pack_sample(self.buf, n, flexion, lateral, rotation, flags)
        self.n = n + 1
        if self.n >= link.samples_per_packet():
            self.flush()

    def due(self, now_t):
        """True when the oldest waiting sample has waited latency_ms (now_t: device t_ms)."""
        if not self.n:
            return False
        age = (now_t - self.t0) & _M
        return self.latency_ms <= age < 0x80000000

    def flush(self):
        """Send what is gathered; returns the number of links reached."""
        n = self.n
        if not n:
            return 0
        self.n = 0
        size = proto.pack_samples_header(self.buf, False, n, self.seq0, self.t0, self.boot_id,
                                         self.period)
        link = self.link
        sent = 0
        if link is not None:
            view = self._views.get(size)
            if view is None:
                view = self._mv[:size]
                self._views[size] = view
            link.posture_buf[0:size] = view
            sent = link.send_posture(size)
        last = (self.seq0 + n - 1) & _M
        if sent:
            self.packets += 1
            self.samples += n
        else:
            self.failed += 1
            self.delivery.undelivered(self.seq0, last)
        return sent
