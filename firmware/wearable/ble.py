"""The wearable's GATT server for the Neckline profile, on MicroPython's `bluetooth` module only.

docs/protocol.md defines the bytes, docs/ble.md the behaviour. Nothing but the documented
`bluetooth` API is used, so this runs unchanged on a board with NimBLE (pairing support needed)
and on the unix port with firmware/sim/bluetooth.py underneath.

The firmware main loop owns one NecklineBLE:

    link = NecklineBLE(on_request, model="NL-1", firmware="0.1.0", hardware="esp32-c3")
    link.start()                           # registers the services, starts advertising
    asyncio.create_task(link.run())        # or call link.poll() from the loop every few ms
    ...
    n = link.samples_per_packet()          # sized to the negotiated MTU of the encrypted link
    for i in range(n):
        proto.pack_sample(link.posture_buf, i, ...)
    size = proto.pack_samples_header(link.posture_buf, False, n, seq0, t0, boot_id, period)
    link.send_posture(size)

on_request(conn_handle, opcode, operands) is called from poll() (never from the BLE IRQ) for every
well-formed control-point request that arrived on an encrypted link. It returns the response
status (an int), a tuple (status, a, b) for the data of SET_TIME / REQUEST_RAW / REQUEST_SUMMARY
(see proto.pack_cp_response), or None when it will answer later with respond(). Malformed requests
and requests from unencrypted links are answered here and never reach it.

Responses and events each go out in the order they were queued, responses first. A control-point
response is indicated; the next indication waits for the previous one's _IRQ_GATTS_INDICATE_DONE.
An event is written with gatts_write(..., send_update=True), so the stack notifies or indicates it
as the host's CCCD asks (the API gives no other way to learn the CCCD). Until a link has shown
which (an indicate-done for the events value, or none within event_probe_ms), sending waits after
each event; once it has acknowledged one, every later event waits for its acknowledgement.
"""

import time

import bluetooth

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    import asyncio
except ImportError:  # older MicroPython
    try:
        import uasyncio as asyncio
    except ImportError:
        asyncio = None

from wearable import proto
from wearable.bonds import SEC_TYPE_OUR_IRK, BondStore

if hasattr(time, "ticks_ms"):
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
else:  # CPython

    def _ticks_ms():
        return int(time.monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b


_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_READ_REQUEST = const(4)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_CONNECTION_UPDATE = const(27)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)

_FLAG_READ = const(0x0002)
_FLAG_NOTIFY = const(0x0010)

_IO_CAPABILITY_NO_INPUT_OUTPUT = const(3)
_SEC_TYPE_PEER = const(2)

_AD_FLAGS = const(0x01)
_AD_UUID128_COMPLETE = const(0x07)
_AD_NAME_COMPLETE = const(0x09)
_AD_APPEARANCE = const(0x19)

_MAX_LINKS = const(3)  # NimBLE's default connection limit on ESP32
_MAX_PENDING_WRITES = const(4)  # requests waiting for poll(); as many again are answered BUSY
# Every request gets exactly one response, so the queue holds one for each request that can wait.
_RESPONSE_QUEUE = const(8)
_RESPONSE_SIZE = const(12)  # largest response: 11 bytes
_EVENT_QUEUE = const(8)
_EVENT_SIZE = const(20)  # largest event: 17 bytes
_CONFIG_MAX_SIZE = const(56)  # 1 + 5 * 11 keys
_ADV_RETRY_MS = const(1000)

_EV_UNKNOWN = const(0)
_EV_NOTIFY = const(1)
_EV_INDICATE = const(2)

_STAT_NAMES = (
    "connects", "disconnects", "adv_starts", "adv_errors", "mtu_exchanges",
    "encryptions", "encryption_failures", "bonds_stored", "bond_store_failures", "bond_misses",
    "bonds_cleared", "notify_sent", "notify_dropped", "notify_blocked",
    "indications_sent", "indications_acked", "indications_failed", "indications_dropped",
    "events_sent", "events_unsent", "events_dropped",
    "writes_ok", "writes_refused", "writes_invalid", "writes_overflow", "writes_orphaned",
    "handler_errors",
)


class BLEStats:
    """Counters of what the BLE layer did and refused; every drop has one."""

    def __init__(self):
        for name in _STAT_NAMES:
            setattr(self, name, 0)

    def as_dict(self):
        d = {}
        for name in _STAT_NAMES:
            d[name] = getattr(self, name)
        return d


class _Ring:
    """Fixed FIFO of preallocated payload buffers.

    On ESP32 the BLE IRQ handler runs on the NimBLE task and can preempt the main loop between any
    two bytecodes, and it sends from the queues. So only the producer (main loop) moves `tail`,
    only the sender moves `head`, and a slot is filled before commit() makes it visible.
    """

    def __init__(self, n, size):
        self.n = n
        self.buf = [bytearray(size) for _ in range(n)]
        self.mv = [memoryview(b) for b in self.buf]
        self.length = bytearray(n)
        self.conn = [0] * n
        self.head = 0  # ever-increasing counts; the slot index is the count modulo n
        self.tail = 0

    def count(self):
        return self.tail - self.head

    def slot(self):
        """Index of the free slot at the tail, or -1 when full; commit() publishes it."""
        if self.tail - self.head >= self.n:
            return -1
        return self.tail % self.n

    def commit(self):
        self.tail += 1

    def first(self):
        return self.head % self.n

    def pop(self):
        self.head += 1

    def clear(self):
        self.head = self.tail


class _Link:
    """What the firmware knows about one connected central."""

    def __init__(self, conn, addr_type, addr):
        self.conn = conn
        self.addr_type = addr_type
        self.addr = addr
        self.mtu = proto.ATT_MTU_DEFAULT
        self.encrypted = False
        self.authenticated = False
        self.bonded = False
        self.key_size = 0
        self.inflight = 0  # value handle of the indication awaiting its ack (0: none)
        self.inflight_ms = 0
        self.ev_mode = _EV_UNKNOWN


def _uuid128_le(s):
    """A 128-bit UUID string as the 16 little-endian bytes AD structures carry."""
    import binascii

    b = binascii.unhexlify(s.replace("-", ""))
    out = bytearray(16)
    for i in range(16):
        out[i] = b[15 - i]
    return bytes(out)


def advertising_payloads(name):
    """(advertising data, scan response) per docs/protocol.md §3.3."""
    adv = bytearray((2, _AD_FLAGS, proto.ADV_FLAGS))
    adv += bytes((17, _AD_UUID128_COMPLETE)) + _uuid128_le(proto.SERVICE_UUID)
    adv += bytes((3, _AD_APPEARANCE, proto.ADV_APPEARANCE & 0xFF, proto.ADV_APPEARANCE >> 8))
    n = name.encode()
    resp = bytes((len(n) + 1, _AD_NAME_COMPLETE)) + n
    return bytes(adv), resp


def _print_log(msg):
    print("ble: " + msg)


class NecklineBLE:
    """GATT server: advertising, services, security, notifications and the control point."""

    def __init__(self, on_request, model="", firmware="", hardware="", bonds_path="bonds.bin",
                 adv_interval_us=250000, event_probe_ms=1000, preferred_mtu=proto.ATT_MTU_MAX,
                 log=None):
        self._on_request = on_request
        self._info = (proto.MANUFACTURER_NAME, model, firmware, hardware)
        self._adv_interval_us = adv_interval_us
        self._probe_ms = event_probe_ms
        self._preferred_mtu = preferred_mtu
        self._log = log or _print_log
        self._ble = bluetooth.BLE()
        self._bonds = BondStore(bonds_path, log=self._log)
        self.stats = BLEStats()
        self.name = ""
        self.advertising = False
        self._started = False
        self._adv_data = b""
        self._resp_data = b""
        self._adv_tried_ms = 0

        self._links = [None] * _MAX_LINKS
        self._pending = []  # control-point writes waiting for poll(): (conn, status, op, args, enc)

        # Everything the hot paths touch is allocated here, once.
        self.posture_buf = bytearray(proto.MAX_PAYLOAD)
        self._posture_mv = memoryview(self.posture_buf)
        self._pv = self._posture_mv[:0]
        self._pv_len = 0
        self._status_buf = bytearray(proto.STATUS_SIZE)
        self._config_buf = bytearray(_CONFIG_MAX_SIZE)
        self._battery = bytearray(1)
        self._responses = _Ring(_RESPONSE_QUEUE, _RESPONSE_SIZE)
        self._events = _Ring(_EVENT_QUEUE, _EVENT_SIZE)
        self._pumping = False
        self._pump_again = False

        self.h_posture = self.h_control = self.h_events = self.h_status = self.h_config = 0
        self.h_battery = 0
        self.h_device_info = ()

    # ================================================================ lifecycle

    def start(self):
        """Load bonds, bring the radio up, register the GATT table and start advertising."""
        n = self._bonds.load()
        if n:
            self._log("bond store: %d entries, %d peers" % (n, self._bonds.peer_count()))
        ble = self._ble
        ble.irq(self._irq)  # before active(True): NimBLE asks for its IRK while starting
        ble.active(True)
        ble.config(bond=True, le_secure=True, mitm=False, io=_IO_CAPABILITY_NO_INPUT_OUTPUT)
        ble.config(mtu=self._preferred_mtu)
        addr = ble.config("mac")[1]
        self.name = "%s%02X%02X" % (proto.ADV_NAME_PREFIX, addr[4], addr[5])
        ble.config(gap_name=self.name)
        self._register()
        self._adv_data, self._resp_data = advertising_payloads(self.name)
        self._started = True
        self.advertise()

    def stop(self):
        """Stop advertising, drop every link and switch the radio off."""
        self._started = False
        try:
            self._ble.gap_advertise(None)
        except OSError:
            pass
        self.advertising = False
        for i in range(_MAX_LINKS):
            if self._links[i] is not None:
                self._links[i] = None
        self._responses.clear()
        self._events.clear()
        self._pending = []
        self._ble.active(False)

    def _register(self):
        U = bluetooth.UUID
        neckline = (U(proto.SERVICE_UUID), (
            (U(proto.POSTURE_UUID), proto.POSTURE_FLAGS),
            (U(proto.CONTROL_POINT_UUID), proto.CONTROL_POINT_FLAGS),
            (U(proto.EVENTS_UUID), proto.EVENTS_FLAGS),
            (U(proto.STATUS_UUID), proto.STATUS_FLAGS),
            (U(proto.CONFIG_UUID), proto.CONFIG_FLAGS),
        ))
        battery = (U(proto.BATTERY_SERVICE_UUID16), (
            (U(proto.BATTERY_LEVEL_UUID16), _FLAG_READ | _FLAG_NOTIFY),
        ))
        device_info = (U(proto.DEVICE_INFO_SERVICE_UUID16), (
            (U(proto.MANUFACTURER_NAME_UUID16), _FLAG_READ),
            (U(proto.MODEL_NUMBER_UUID16), _FLAG_READ),
            (U(proto.FIRMWARE_REVISION_UUID16), _FLAG_READ),
            (U(proto.HARDWARE_REVISION_UUID16), _FLAG_READ),
        ))
        handles = self._ble.gatts_register_services((neckline, battery, device_info))
        (self.h_posture, self.h_control, self.h_events, self.h_status,
         self.h_config) = handles[0]
        self.h_battery = handles[1][0]
        self.h_device_info = handles[2]
        ble = self._ble
        # Values default to 20-byte buffers and remote writes are cut to the buffer silently: make
        # room for any single ATT write so a long request is rejected whole, never truncated.
        ble.gatts_set_buffer(self.h_control, proto.MAX_PAYLOAD)
        ble.gatts_set_buffer(self.h_status, proto.STATUS_SIZE)
        ble.gatts_set_buffer(self.h_config, _CONFIG_MAX_SIZE)
        for i in range(4):
            ble.gatts_write(self.h_device_info[i], self._info[i].encode())
        self.update_status(0, 0, 0, 0, 0, 0, 0, 0, 0, proto.CONFIG_DEFAULTS[
            proto.KEY_STREAM_PERIOD_MS])
        entries = []
        for key in range(1, proto.MAX_CONFIG_KEY + 1):
            entries.append((key, proto.CONFIG_DEFAULTS[key]))
        self.update_config(entries)
        ble.gatts_write(self.h_battery, self._battery)

    def advertise(self):
        """(Re)start connectable advertising; False if the stack refuses (counted; poll retries)."""
        self._adv_tried_ms = _ticks_ms()
        try:
            self._ble.gap_advertise(self._adv_interval_us, self._adv_data,
                                    resp_data=self._resp_data, connectable=True)
        except OSError as e:
            self.stats.adv_errors += 1
            self.advertising = False
            self._log("advertising failed: %r" % (e,))
            return False
        self.stats.adv_starts += 1
        self.advertising = True
        return True

    async def run(self, period_ms=10):
        """poll() forever, for an asyncio main loop."""
        while self._started:
            self.poll()
            if hasattr(asyncio, "sleep_ms"):
                await asyncio.sleep_ms(period_ms)
            else:
                await asyncio.sleep(period_ms / 1000)

    def poll(self):
        """Dispatch control-point requests, release waits and retry advertising. Cheap when idle."""
        while self._pending:
            self._dispatch(self._pending.pop(0))
        now = _ticks_ms()
        released = False
        for i in range(_MAX_LINKS):
            link = self._links[i]
            if (link is not None and link.inflight != 0 and link.inflight == self.h_events
                    and link.ev_mode == _EV_UNKNOWN
                    and _ticks_diff(now, link.inflight_ms) >= self._probe_ms):
                # No indicate-done: the host takes events as notifications (or not at all). Once a
                # link has acknowledged one, the stack reports every later one (or its timeout).
                link.inflight = 0
                link.ev_mode = _EV_NOTIFY
                released = True
        if released or self._responses.count() or self._events.count():
            self._pump()  # also the safety net for a wake-up lost to a preempting IRQ
        if (self._started and not self.advertising and not self.connected()
                and _ticks_diff(now, self._adv_tried_ms) >= _ADV_RETRY_MS):
            self.advertise()

    # ================================================================ state for the main loop

    def connected(self):
        for i in range(_MAX_LINKS):
            if self._links[i] is not None:
                return True
        return False

    def streaming(self):
        """True when some link is encrypted, i.e. posture notifications have somewhere to go."""
        for i in range(_MAX_LINKS):
            link = self._links[i]
            if link is not None and link.encrypted:
                return True
        return False

    def mtu(self):
        """Smallest ATT_MTU among encrypted links (the default 23 if none)."""
        m = 0
        for i in range(_MAX_LINKS):
            link = self._links[i]
            if link is not None and link.encrypted and (m == 0 or link.mtu < m):
                m = link.mtu
        return m or proto.ATT_MTU_DEFAULT

    def payload_max(self):
        return proto.payload_max(self.mtu())

    def samples_per_packet(self):
        return proto.samples_per_packet(self.mtu())

    def summary_records_per_packet(self):
        return proto.summary_records_per_packet(self.mtu())

    def bonded(self):
        return self._bonds.peer_count() > 0

    def link_info(self, conn):
        """(mtu, encrypted, authenticated, bonded) of a connection, or None."""
        link = self._link(conn)
        if link is None:
            return None
        return (link.mtu, link.encrypted, link.authenticated, link.bonded)

    # ================================================================ outgoing data

    def send_posture(self, size):
        """Notify posture_buf[:size] on every encrypted link; returns how many links got it.

        A packet longer than a link's MTU allows is not sent there (counted in notify_dropped),
        never truncated; so is one the stack has no buffer for. Allocation-free while the packet
        size stays the same.
        """
        if size != self._pv_len:
            self._pv = self._posture_mv[:size]
            self._pv_len = size
        sent = 0
        for i in range(_MAX_LINKS):
            link = self._links[i]
            if link is None:
                continue
            if not link.encrypted:
                self.stats.notify_blocked += 1
                continue
            if size > proto.payload_max(link.mtu):
                self.stats.notify_dropped += 1
                continue
            try:
                self._ble.gatts_notify(link.conn, self.h_posture, self._pv)
            except OSError:
                self.stats.notify_dropped += 1
                continue
            self.stats.notify_sent += 1
            sent += 1
        return sent

    def send_event(self, code, event_seq, boot_id, t_ms, a=0, b=0, c=0):
        """Queue an event (operands as proto.pack_event); False if it cannot be sent (counted)."""
        if not self.connected():
            self.stats.events_unsent += 1
            return False
        q = self._events
        i = q.slot()
        if i < 0:
            self.stats.events_dropped += 1
            self._log("event queue full: event %d dropped" % code)
            return False
        q.length[i] = proto.pack_event(q.buf[i], code, event_seq, boot_id, t_ms, a, b, c)
        q.commit()
        self._pump()
        return True

    def respond(self, conn, opcode, status, a=0, b=0):
        """Queue a control-point response for `conn`; False if it cannot be sent (counted)."""
        if self._link(conn) is None:
            self.stats.indications_dropped += 1
            return False
        q = self._responses
        i = q.slot()
        if i < 0:
            self.stats.indications_dropped += 1
            self._log("response queue full: response to 0x%02x dropped" % opcode)
            return False
        q.conn[i] = conn
        q.length[i] = proto.pack_cp_response(q.buf[i], opcode, status, a, b)
        q.commit()
        self._pump()
        return True

    def update_status(self, boot_id, t_ms, next_seq, oldest_seq, next_record, oldest_record,
                      battery_mv, battery_pct, state, period_ms):
        """Refresh the status value (proto.pack_status); the BONDED bit comes from the store."""
        state &= ~proto.STATE_BONDED
        if self._bonds.peer_count():
            state |= proto.STATE_BONDED
        proto.pack_status(self._status_buf, boot_id, t_ms, next_seq, oldest_seq, next_record,
                          oldest_record, battery_mv, battery_pct, state, period_ms)
        self._ble.gatts_write(self.h_status, self._status_buf)

    def update_config(self, entries):
        """Refresh the config value from (key, value) pairs."""
        n = proto.pack_config(self._config_buf, entries)
        self._ble.gatts_write(self.h_config, memoryview(self._config_buf)[:n])

    def set_battery(self, percent):
        """Battery Level value; subscribed centrals are notified when it changes."""
        percent = 0 if percent < 0 else (100 if percent > 100 else percent)
        if self._battery[0] == percent:
            return
        self._battery[0] = percent
        self._ble.gatts_write(self.h_battery, self._battery, self.connected())

    def clear_bonds(self, disconnect=True):
        """Forget every bonded central (the button combination); returns how many, -1 on failure.

        Connected centrals are disconnected: their bond is gone, so they must pair again.
        """
        n = self._bonds.clear()
        self.stats.bonds_cleared += 1
        self._log("bonds cleared: %d peer(s) forgotten" % n if n >= 0 else
                  "bonds cleared in memory; the bond file could not be removed")
        if disconnect:
            for i in range(_MAX_LINKS):
                link = self._links[i]
                if link is not None:
                    try:
                        self._ble.gap_disconnect(link.conn)
                    except OSError:
                        pass
        return n

    # ================================================================ the indication queues

    def _pump(self):
        """Send queued responses, then events, while nothing they wait for is unacknowledged.

        Responses go first: a procedure's response then precedes the event it causes (CALIBRATE),
        and an event held back for a link that is not yet encrypted never blocks a response.
        """
        if self._pumping:
            # Called from an IRQ that preempted a pump in progress: that pump goes round again.
            self._pump_again = True
            return
        self._pumping = True
        try:
            again = True
            while again:
                self._pump_again = False
                while self._pump_response() or self._pump_event():
                    pass
                again = self._pump_again
        finally:
            self._pumping = False

    def _pump_response(self):
        q = self._responses
        if not q.count():
            return False
        i = q.first()
        link = self._link(q.conn[i])
        if link is None:
            self.stats.indications_dropped += 1
            q.pop()
            return True
        if link.inflight:
            return False
        # Mark the wait before sending: the acknowledgement may arrive (in an IRQ) before the
        # call returns.
        link.inflight = self.h_control
        link.inflight_ms = _ticks_ms()
        try:
            self._ble.gatts_indicate(link.conn, self.h_control, q.mv[i][:q.length[i]])
        except OSError as e:
            link.inflight = 0
            self.stats.indications_failed += 1
            self._log("indication failed: %r" % (e,))
            q.pop()
            return True
        self.stats.indications_sent += 1
        q.pop()
        return True

    def _pump_event(self):
        q = self._events
        if not q.count():
            return False
        # An event goes to every subscribed link at once, so it waits for all of them; and only
        # encrypted links may receive it.
        links = 0
        for j in range(_MAX_LINKS):
            link = self._links[j]
            if link is None:
                continue
            links += 1
            if link.inflight or not link.encrypted:
                return False
        i = q.first()
        if links == 0:
            self.stats.events_unsent += 1
            q.pop()
            return True
        now = _ticks_ms()
        for j in range(_MAX_LINKS):
            link = self._links[j]
            if link is not None and link.ev_mode != _EV_NOTIFY:
                link.inflight = self.h_events
                link.inflight_ms = now
        try:
            self._ble.gatts_write(self.h_events, q.mv[i][:q.length[i]], True)
        except OSError as e:
            for j in range(_MAX_LINKS):
                link = self._links[j]
                if link is not None and link.inflight == self.h_events:
                    link.inflight = 0
            self.stats.events_dropped += 1
            self._log("event not sent: %r" % (e,))
            q.pop()
            return True
        self.stats.events_sent += 1
        q.pop()
        return True

    # ================================================================ control point

    def _dispatch(self, item):
        conn, status, opcode, operands, encrypted = item
        if self._link(conn) is None:
            self.stats.writes_orphaned += 1
            return
        if status != proto.ST_SUCCESS:
            if status != proto.ST_BUSY:
                self.stats.writes_invalid += 1
            self.respond(conn, opcode, status)
            return
        if not encrypted:
            self.stats.writes_refused += 1
            self._log("control point 0x%02x refused: link not encrypted" % opcode)
            self.respond(conn, opcode, proto.ST_NOT_AUTHORISED)
            return
        self.stats.writes_ok += 1
        try:
            result = self._on_request(conn, opcode, operands)
        except Exception as e:  # a handler bug must not take the radio down
            self.stats.handler_errors += 1
            self._log("request 0x%02x handler failed: %r" % (opcode, e))
            self.respond(conn, opcode, proto.ST_REFUSED)
            return
        if result is None:
            return
        if isinstance(result, int):
            self.respond(conn, opcode, result)
        else:
            self.respond(conn, opcode, result[0], result[1], result[2])

    def _on_control_write(self, conn):
        data = self._ble.gatts_read(self.h_control)
        link = self._link(conn)
        status, opcode, operands = proto.parse_request(data)
        n = len(self._pending)
        if n >= _MAX_PENDING_WRITES:
            # The main loop is behind. The answer is BUSY (sent from poll(): the queues are filled
            # by the main loop only); past twice the limit the request is dropped, counted.
            self.stats.writes_overflow += 1
            if n >= 2 * _MAX_PENDING_WRITES:
                return
            status, operands = proto.ST_BUSY, ()
        # The security state that counts is the link's at the time of the write.
        self._pending.append((conn, status, opcode, operands,
                              link is not None and link.encrypted))

    # ================================================================ BLE events

    def _link(self, conn):
        for i in range(_MAX_LINKS):
            link = self._links[i]
            if link is not None and link.conn == conn:
                return link
        return None

    def _irq(self, event, data):
        if event == _IRQ_GATTS_INDICATE_DONE:
            conn, handle, status = data
            self._on_indicate_done(conn, handle, status)
        elif event == _IRQ_GATTS_WRITE:
            conn, handle = data
            if handle == self.h_control:
                self._on_control_write(conn)
        elif event == _IRQ_CENTRAL_CONNECT:
            conn, addr_type, addr = data
            self._on_connect(conn, addr_type, bytes(addr))
        elif event == _IRQ_CENTRAL_DISCONNECT:
            conn, _, _ = data
            self._on_disconnect(conn)
        elif event == _IRQ_MTU_EXCHANGED:
            conn, mtu = data
            link = self._link(conn)
            if link is not None:
                link.mtu = mtu
                self.stats.mtu_exchanges += 1
        elif event == _IRQ_ENCRYPTION_UPDATE:
            conn, encrypted, authenticated, bonded, key_size = data
            self._on_encryption(conn, encrypted, authenticated, bonded, key_size)
        elif event == _IRQ_GET_SECRET:
            sec_type, index, key = data
            value = self._bonds.get(sec_type, index, None if key is None else bytes(key))
            if value is None and sec_type == _SEC_TYPE_PEER and key is not None:
                self.stats.bond_misses += 1
            return value
        elif event == _IRQ_SET_SECRET:
            sec_type, key, value = data
            ok = self._bonds.set(sec_type, bytes(key), None if value is None else bytes(value))
            if value is not None and sec_type != SEC_TYPE_OUR_IRK:
                if ok:
                    self.stats.bonds_stored += 1
                else:
                    self.stats.bond_store_failures += 1
            return ok
        elif event == _IRQ_GATTS_READ_REQUEST:
            return 0
        elif event == _IRQ_PASSKEY_ACTION:
            self._log("passkey action ignored: this device pairs with Just Works")
        elif event == _IRQ_CONNECTION_UPDATE:
            pass
        return None

    def _on_connect(self, conn, addr_type, addr):
        self.stats.connects += 1
        self.advertising = False  # the stack stops advertising when a central connects
        for i in range(_MAX_LINKS):
            if self._links[i] is None:
                self._links[i] = _Link(conn, addr_type, addr)
                return
        self._log("no room for connection %d; disconnecting it" % conn)
        try:
            self._ble.gap_disconnect(conn)
        except OSError:
            pass

    def _on_disconnect(self, conn):
        self.stats.disconnects += 1
        for i in range(_MAX_LINKS):
            link = self._links[i]
            if link is not None and link.conn == conn:
                self._links[i] = None
        self._pending = [p for p in self._pending if p[0] != conn]
        self._pump()  # drops what was queued for the link, releases what waited on it
        if self._started and not self.connected():
            self.advertise()

    def _on_encryption(self, conn, encrypted, authenticated, bonded, key_size):
        link = self._link(conn)
        if link is None:
            return
        link.encrypted = bool(encrypted)
        link.authenticated = bool(authenticated)
        link.bonded = bool(bonded)
        link.key_size = key_size
        link.ev_mode = _EV_UNKNOWN  # a freshly secured host usually (re)subscribes
        if encrypted:
            self.stats.encryptions += 1
        else:
            self.stats.encryption_failures += 1
            self._log("encryption failed on connection %d" % conn)
        self._pump()

    def _on_indicate_done(self, conn, handle, status):
        link = self._link(conn)
        if link is None:
            return
        if status == 0:
            self.stats.indications_acked += 1
        else:
            self.stats.indications_failed += 1
        if handle == self.h_events:
            link.ev_mode = _EV_INDICATE
        if link.inflight == handle:
            link.inflight = 0
        self._pump()
