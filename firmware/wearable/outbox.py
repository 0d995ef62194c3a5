"""Events waiting for a host: numbered when they happen, sent once a link is encrypted.

Every event gets its event_seq (protocol §4: per boot, +1 per event) the moment it happens and
keeps the t_ms of that moment. It waits here while no encrypted link exists (a headache marker
pressed with the phone out of range still reaches the host later) and goes to NecklineBLE's own
queue a few at a time. When more than `capacity` are waiting, the oldest is dropped and counted:
the host sees the hole in event_seq, which is how the protocol reports lost events.

    box = Outbox()
    box.put(proto.EV_HEADACHE_MARKER, t_ms)
    box.flush(link, boot_id)        # every few tens of ms
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


CAPACITY = const(16)
_PER_FLUSH = const(2)  # NecklineBLE queues 8; leave room for its acknowledgement pacing


class Outbox:
    def __init__(self, capacity=CAPACITY):
        self.capacity = capacity
        self._q = []  # (code, event_seq, t_ms, a, b, c), oldest first
        self.next_seq = 0
        self.queued = 0
        self.sent = 0
        self.dropped = 0  # the oldest went when the box was full

    def put(self, code, t_ms, a=0, b=0, c=0):
        """Record an event now; returns its event_seq."""
        seq = self.next_seq
        self.next_seq = (seq + 1) & 0xFFFF
        if len(self._q) >= self.capacity:
            self._q.pop(0)
            self.dropped += 1
        self._q.append((code, seq, t_ms, a, b, c))
        self.queued += 1
        return seq

    def pending(self):
        return len(self._q)

    def flush(self, link, boot_id):
        """Hand waiting events to the BLE layer while an encrypted link can take them."""
        n = 0
        while self._q and n < _PER_FLUSH and link.streaming():
            code, seq, t_ms, a, b, c = self._q[0]
            if not link.send_event(code, seq, boot_id, t_ms, a, b, c):
                break  # its queue is full (or the link just went): try again later
            self._q.pop(0)
            self.sent += 1
            n += 1
        return n
