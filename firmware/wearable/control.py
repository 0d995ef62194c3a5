"""The control point: request handler and the two record-access procedures (protocol §10).

NecklineBLE calls on_request(conn, opcode, operands) from its poll() for every well-formed
request from an encrypted link. Quick requests are answered by the return value; REQUEST_RAW and
REQUEST_SUMMARY start a procedure that step() advances and that answers with respond() once the
last packet went out (the response marks the end, as the record-access pattern wants).

Pacing: step() runs every ~10 ms and sends at most `burst` packets per call, stopping at the first
that reaches no link (NimBLE says ENOMEM when it is out of buffers; the simulated stack does the
same when the bridge is not reading). That packet is kept and offered again on the next call, so
nothing is skipped, and live packets, which are sent from another task, get their turn in
between. While a procedure runs every request but ABORT is answered BUSY. If the requesting link
goes away the procedure is dropped without a response (there is nobody to answer).
"""

from wearable import proto

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_M = const(0xFFFFFFFF)
NONE = const(0)
RAW = const(1)
SUMMARY = const(2)
BURST = const(2)


class Control:
    def __init__(self, app, burst=BURST):
        self.app = app
        self.burst = burst
        self.kind = NONE
        self.conn = 0
        self.opcode = 0
        self.buf = bytearray(proto.MAX_PAYLOAD)
        self._mv = memoryview(self.buf)
        self._views = {}
        self.pending = 0  # length of a filled packet that has not reached a link yet
        self.sent = 0
        # counters
        self.requests = 0
        self.busy_answers = 0
        self.procedures = 0
        self.aborted = 0
        self.orphaned = 0  # procedures whose link went away
        self.packets = 0

    def running(self):
        return self.kind != NONE

    # --- requests ----------------------------------------------------------------------------
    def on_request(self, conn, op, operands):
        self.requests += 1
        app = self.app
        if self.kind != NONE and op != proto.OP_ABORT:
            self.busy_answers += 1
            return proto.ST_BUSY
        if op == proto.OP_CALIBRATE:
            return proto.ST_SUCCESS if app.calibrate("host") else proto.ST_REFUSED
        if op == proto.OP_SET_TIME:
            return app.set_time(operands[0])
        if op == proto.OP_SET_CONFIG:
            return app.set_config(operands)
        if op == proto.OP_REQUEST_RAW:
            if app.ring.request(operands[0], operands[1]) == 0:
                return proto.ST_NO_RECORDS
            self._start(RAW, conn, op)
            return None
        if op == proto.OP_REQUEST_SUMMARY:
            if app.flog.request(operands[0]) == 0:
                return proto.ST_NO_RECORDS
            self._start(SUMMARY, conn, op)
            return None
        if op == proto.OP_ABORT:
            self.abort()
            return proto.ST_SUCCESS
        if op == proto.OP_GET_STATUS:
            app.refresh_status()
            return proto.ST_SUCCESS
        return proto.ST_UNSUPPORTED

    def _start(self, kind, conn, op):
        self.kind = kind
        self.conn = conn
        self.opcode = op
        self.pending = 0
        self.sent = 0
        self.procedures += 1

    def abort(self):
        """ABORT: the running procedure answers first (counting what really went out)."""
        if self.kind == NONE:
            return
        self.aborted += 1
        self._source().abort()
        self._finish()

    def _source(self):
        return self.app.ring if self.kind == RAW else self.app.flog

    def _finish(self):
        app = self.app
        b = app.ring.oldest_seq if self.kind == RAW else app.flog.next_record
        app.link.respond(self.conn, self.opcode, proto.ST_SUCCESS, self.sent, b)
        self.kind = NONE
        self.pending = 0

    def drop(self):
        """Forget the procedure without answering (its link is gone)."""
        if self.kind != NONE:
            self._source().abort()
            self.kind = NONE
            self.pending = 0
            self.orphaned += 1

    # --- the procedure -----------------------------------------------------------------------
    def step(self):
        if self.kind == NONE:
            return 0
        link = self.app.link
        info = link.link_info(self.conn)
        if info is None or not info[1]:
            self.drop()
            return 0
        src = self._source()
        n = 0
        while n < self.burst:
            if not self.pending:
                size = src.fill(self.buf, link.mtu())
                if size == 0:
                    if not src.busy:
                        self._finish()
                    return n  # (busy: the summary log skipped damaged records; next call)
                self.pending = size
            size = self.pending
            view = self._views.get(size)
            if view is None:
                view = self._mv[:size]
                self._views[size] = view
            link.posture_buf[0:size] = view
            if not link.send_posture(size):
                return n  # no buffer (or the link is going): offer it again next time
            count = self.buf[1]
            if self.kind == RAW:
                b = self.buf
                seq0 = b[2] | b[3] << 8 | b[4] << 16 | b[5] << 24
                self.app.delivery.delivered(seq0, (seq0 + count - 1) & _M)
            self.sent += count
            self.pending = 0
            self.packets += 1
            n += 1
        return n
