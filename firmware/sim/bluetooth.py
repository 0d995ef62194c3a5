"""Simulated `bluetooth` module: MicroPython's BLE API over the virtual-BLE bridge (docs/ble.md).

Runs on the MicroPython unix port (which has no `bluetooth`) and on CPython. The firmware sees the
documented API of the real module (BLE, UUID, FLAG_*; IRQ numbers and tuple shapes as on NimBLE);
underneath, one TCP connection to the bridge server named by NECKLINE_VBLE_BRIDGE="host:port"
carries newline-terminated JSON messages (the bridge protocol). What the shim models, as NimBLE
does it:

* handles: numbered from 1, per service: declaration, then per characteristic: declaration,
  value, CCCD (NOTIFY or INDICATE), user descriptors. (A real NimBLE table starts with its own
  GAP and GATT services, so real handles are higher; firmware never hard-codes them.)
* value buffers: 20 bytes by default, grown by local writes, remote writes truncated to the
  buffer, gatts_set_buffer() clears the value and sets append mode, reads in append mode drain.
* CCCD writes change the per-connection subscription and raise no IRQ; gatts_write(...,
  send_update=True) notifies or indicates subscribers, holding back an indication while another
  is unacknowledged on that connection (NimBLE then sends the current value after the ack).
* ATT permission checks on remote reads/writes (insufficient encryption 0x0F, authentication
  0x05, not permitted 0x02/0x03); notifications longer than MTU-3 are truncated and counted.
* pairing (Just Works, LE Secure Connections when configured) with _IRQ_SET_SECRET for the bond,
  re-encryption through _IRQ_GET_SECRET, and NimBLE's start-up IRK load (sec_type 10).

Simulation-only names start with `_sim`: `_sim_pump()` processes bridge messages synchronously,
`_sim_stats` counts what a real stack would do silently, `_sim_att_security = False` models a stack
that does not enforce the attribute permission flags (the firmware's own checks then show).
"""

import binascii
import errno
import json
import os
import select
import socket
import sys
import time

try:
    import asyncio
except ImportError:  # a MicroPython build without asyncio: only _sim_pump() delivers events
    asyncio = None

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MICROPYTHON = sys.implementation.name == "micropython"

if hasattr(time, "ticks_ms"):
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
else:  # CPython

    def _ticks_ms():
        return int(time.monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b


FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)

_F_READ_ENCRYPTED = const(0x0200)
_F_READ_AUTHENTICATED = const(0x0400)
_F_READ_AUTHORIZED = const(0x0800)
_F_WRITE_ENCRYPTED = const(0x1000)
_F_WRITE_AUTHENTICATED = const(0x2000)

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

_ATT_INVALID_HANDLE = const(0x01)
_ATT_READ_NOT_PERMITTED = const(0x02)
_ATT_WRITE_NOT_PERMITTED = const(0x03)
_ATT_INSUFFICIENT_AUTHENTICATION = const(0x05)
_ATT_REQUEST_NOT_SUPPORTED = const(0x06)
_ATT_INVALID_VALUE_LENGTH = const(0x0D)
_ATT_UNLIKELY = const(0x0E)
_ATT_INSUFFICIENT_ENCRYPTION = const(0x0F)

_SMP_FAIL = const(5)  # pair/encrypt status: authentication failure or key missing
_BLE_HS_ENOTCONN = const(7)  # NimBLE's status for an indication cut short by a disconnect
_EBUSY = const(16)  # not in MicroPython's errno module
_IO_NO_INPUT_OUTPUT = const(3)
_SEC_TYPE_PEER = const(2)
_SEC_TYPE_OUR_IRK = const(10)

_DEFAULT_ATTR_LEN = const(20)
_ATT_MTU_MIN = const(23)
_ATT_MTU_MAX = const(517)
_MAX_ADV_LEN = const(31)
_TX_WAIT_MS = const(2000)
_RX_CHUNK = const(4096)

_sim_att_security = True
_sim_stats = {
    "rx_messages": 0,
    "rx_bad": 0,
    "rx_unknown_op": 0,
    "tx_messages": 0,
    "tx_dropped": 0,
    "notify_truncated": 0,
    "write_truncated": 0,
    "indicate_overlap": 0,
    "irq_errors": 0,
    "bridge_lost": 0,
}


def _log(msg):
    print("bluetooth(sim): " + msg)


def _print_exception(e):
    if hasattr(sys, "print_exception"):
        sys.print_exception(e)
    else:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)


def _hex(data):
    return binascii.hexlify(data).decode()


def _getenv(name):
    if hasattr(os, "getenv"):
        return os.getenv(name)
    return os.environ.get(name)


def _random(n):
    return os.urandom(n)


class UUID:
    """bluetooth.UUID: a 16-bit int, a 128-bit string, or 2/4/16 little-endian bytes."""

    def __init__(self, value):
        if isinstance(value, UUID):
            self._s = value._s
            return
        if isinstance(value, int):
            if value < 0 or value > 0xFFFF:
                raise ValueError("invalid UUID")
            self._s = "%04x" % value
            return
        if isinstance(value, str):
            h = value.replace("-", "").lower()
            if len(h) != 32 and len(h) != 4:
                raise ValueError("invalid UUID")
            int(h, 16)  # raises ValueError on non-hex
            if len(h) == 4:
                self._s = h
            else:
                self._s = "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
            return
        b = bytes(value)
        if len(b) == 2 or len(b) == 4:
            n = 0
            for i in range(len(b) - 1, -1, -1):
                n = (n << 8) | b[i]
            self._s = ("%04x" if len(b) == 2 else "%08x") % n
        elif len(b) == 16:
            UUID.__init__(self, _hex(bytes(reversed(b))))
        else:
            raise ValueError("invalid UUID")

    def __eq__(self, other):
        return isinstance(other, UUID) and other._s == self._s

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self._s)

    def __repr__(self):
        if len(self._s) <= 8:
            return "UUID(0x%s)" % self._s
        return "UUID('%s')" % self._s

    def __str__(self):
        return self.__repr__()

    def __bytes__(self):
        return bytes(reversed(binascii.unhexlify(self._s.replace("-", ""))))


class _Attr:
    def __init__(self, flags, chr_handle=0):
        self.flags = flags
        self.value = b""
        self.maxlen = _DEFAULT_ATTR_LEN
        self.append = False
        self.chr_handle = chr_handle  # value handle of the characteristic a descriptor belongs to


class _Conn:
    def __init__(self, addr_type, addr):
        self.addr_type = addr_type
        self.addr = addr
        self.mtu = _ATT_MTU_MIN
        self.encrypted = False
        self.authenticated = False
        self.bonded = False
        self.key_size = 0
        self.sub = {}  # value handle -> CCCD bits
        self.inflight = 0  # value handle of the unacknowledged indication
        self.pending = []  # value handles whose send_update indication waits for the ack


class BLE:
    """The singleton BLE object."""

    _instance = None

    def __new__(cls):
        if BLE._instance is None:
            BLE._instance = object.__new__(cls)
            BLE._instance._setup()
        return BLE._instance

    def __init__(self):
        pass

    def _setup(self):
        self._active = False
        self._sock = None
        self._poller = None
        self._rx = b""
        self._tx = b""
        self._irq = None
        self._task = None
        self._deferred = []
        self._cfg = {
            "gap_name": b"MPY NIMBLE",
            "mtu": 256,
            "rxbuf": 1024,
            "addr_mode": 0,
            "bond": False,
            "le_secure": False,
            "mitm": False,
            "io": _IO_NO_INPUT_OUTPUT,
        }
        self._addr_type = 0
        self._addr = b"\x00" * 6
        self._attrs = {}
        self._cccd = {}  # CCCD handle -> value handle
        self._cccd_of = {}  # value handle -> CCCD handle
        self._conns = {}
        self._adv = None  # (interval_us, adv, resp, connectable) while advertising
        self._adv_data = b""
        self._resp_data = b""

    # ------------------------------------------------------------------ configuration

    def active(self, *args):
        if args:
            if args[0]:
                if not self._active:
                    self._start()
            elif self._active:
                self._stop()
        return self._active

    def config(self, *args, **kwargs):
        if not kwargs:
            if len(args) != 1:
                raise TypeError("must query one param")
            name = args[0]
            if name == "mac":
                self._check_active()
                return (self._addr_type, self._addr)
            if name in ("gap_name", "mtu", "rxbuf"):
                return self._cfg[name]
            raise ValueError("unknown config param")
        if args:
            raise TypeError("can't specify pos and kw args")
        for name in kwargs:
            value = kwargs[name]
            if name == "gap_name":
                self._cfg[name] = bytes(value.encode() if isinstance(value, str) else value)
            elif name == "mtu":
                if value < _ATT_MTU_MIN or value > _ATT_MTU_MAX:
                    raise OSError(errno.EINVAL)
                self._cfg[name] = value
            elif name in ("rxbuf", "addr_mode", "io"):
                self._cfg[name] = int(value)
            elif name in ("bond", "le_secure", "mitm"):
                self._cfg[name] = bool(value)
            else:
                raise ValueError("unknown config param")
        return None

    def irq(self, handler):
        if handler is not None and not callable(handler):
            raise ValueError("invalid handler")
        self._irq = handler

    # ------------------------------------------------------------------ GAP

    def gap_advertise(self, interval_us=500000, adv_data=None, *, resp_data=None, connectable=True):
        self._check_active()
        self._maybe_start_task()
        if interval_us is None:
            self._adv = None
            self._send({"op": "adv", "interval_us": None, "adv": _hex(self._adv_data),
                        "resp": _hex(self._resp_data), "connectable": bool(connectable)})
            return None
        if adv_data is not None:
            adv_data = bytes(adv_data)
            if len(adv_data) > _MAX_ADV_LEN:
                raise OSError(errno.EINVAL)
            self._adv_data = adv_data
        if resp_data is not None:
            resp_data = bytes(resp_data)
            if len(resp_data) > _MAX_ADV_LEN:
                raise OSError(errno.EINVAL)
            self._resp_data = resp_data
        interval_us = (int(interval_us) // 625) * 625
        self._adv = interval_us
        self._send({"op": "adv", "interval_us": interval_us, "adv": _hex(self._adv_data),
                    "resp": _hex(self._resp_data), "connectable": bool(connectable)})
        return None

    def gap_disconnect(self, conn_handle):
        self._check_active()
        c = self._conns.get(conn_handle)
        if c is None:
            return False
        self._send({"op": "disconnect", "conn": conn_handle, "reason": 0x13})
        # The stack reports the disconnect later, from its own context, never inside this call.
        self._drop_conn(conn_handle, c)
        return True

    def gap_pair(self, conn_handle):
        self._check_active()
        if conn_handle not in self._conns:
            raise OSError(errno.ENOTCONN)
        self._send({"op": "pair", "conn": conn_handle})

    def gap_passkey(self, conn_handle, action, passkey):
        self._check_active()
        if conn_handle not in self._conns:
            raise OSError(errno.ENOTCONN)
        _log("gap_passkey ignored: the simulation pairs with Just Works only")

    def gap_scan(self, *args):
        raise OSError(errno.EOPNOTSUPP)

    def gap_connect(self, *args):
        raise OSError(errno.EOPNOTSUPP)

    def gattc_exchange_mtu(self, conn_handle):
        raise OSError(errno.EOPNOTSUPP)

    # ------------------------------------------------------------------ GATT server

    def gatts_register_services(self, services):
        self._check_active()
        if self._conns or self._adv is not None:
            raise OSError(_EBUSY)
        attrs = {}
        cccd = {}
        cccd_of = {}
        result = []
        wire = []
        handle = 1
        for svc in services:
            if len(svc) != 2:
                raise ValueError("service must be (uuid, characteristics)")
            suuid = svc[0]
            if not isinstance(suuid, UUID):
                raise ValueError("invalid service UUID")
            svc_wire = {"uuid": suuid._s, "handle": handle, "chars": []}
            handle += 1
            handles = []
            for ch in svc[1]:
                if len(ch) == 2:
                    cuuid, cflags = ch
                    descs = ()
                elif len(ch) == 3:
                    cuuid, cflags, descs = ch
                else:
                    raise ValueError("characteristic must be (uuid, flags[, descriptors])")
                if not isinstance(cuuid, UUID):
                    raise ValueError("invalid characteristic UUID")
                decl = handle
                value = handle + 1
                handle += 2
                attrs[value] = _Attr(cflags)
                handles.append(value)
                cccd_handle = None
                if cflags & (FLAG_NOTIFY | FLAG_INDICATE):
                    cccd_handle = handle
                    handle += 1
                    cccd[cccd_handle] = value
                    cccd_of[value] = cccd_handle
                descs_wire = []
                for d in descs:
                    duuid, dflags = d
                    if not isinstance(duuid, UUID):
                        raise ValueError("invalid descriptor UUID")
                    attrs[handle] = _Attr(dflags, value)
                    handles.append(handle)
                    descs_wire.append({"uuid": duuid._s, "flags": dflags, "handle": handle})
                    handle += 1
                svc_wire["chars"].append({
                    "uuid": cuuid._s, "flags": cflags, "decl_handle": decl,
                    "value_handle": value, "cccd_handle": cccd_handle, "descs": descs_wire,
                })
            wire.append(svc_wire)
            result.append(tuple(handles))
        self._attrs = attrs
        self._cccd = cccd
        self._cccd_of = cccd_of
        self._send({"op": "register", "services": wire})
        return tuple(result)

    def gatts_read(self, value_handle):
        self._check_active()
        a = self._attrs.get(value_handle)
        if a is None:
            return b""
        v = a.value
        if a.append:
            a.value = b""
        return v

    def gatts_write(self, value_handle, data, send_update=False):
        self._check_active()
        a = self._attrs.get(value_handle)
        if a is None:
            raise OSError(errno.EINVAL)
        v = bytes(data)
        a.value = v
        if len(v) > a.maxlen:
            a.maxlen = len(v)
        if send_update:
            self._send_update(value_handle, a)
        return len(v)

    def gatts_set_buffer(self, value_handle, size, append=False):
        self._check_active()
        a = self._attrs.get(value_handle)
        if a is None:
            raise OSError(errno.EINVAL)
        a.maxlen = size
        a.value = b""
        a.append = bool(append)

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self._check_active()
        self._maybe_start_task()
        c = self._conns.get(conn_handle)
        if c is None:
            raise OSError(errno.ENOTCONN)
        payload = self._payload(value_handle, data)
        self._send({"op": "notify", "conn": conn_handle, "handle": value_handle,
                    "data": _hex(self._fit(c, payload))}, True)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        self._check_active()
        self._maybe_start_task()
        c = self._conns.get(conn_handle)
        if c is None:
            raise OSError(errno.ENOTCONN)
        payload = self._payload(value_handle, data)
        self._indicate(conn_handle, c, value_handle, payload)

    # ------------------------------------------------------------------ internals: device side

    def _check_active(self):
        if not self._active:
            raise OSError(errno.ENODEV)

    def _payload(self, value_handle, data):
        if data is not None:
            return bytes(data)
        a = self._attrs.get(value_handle)
        if a is None:
            raise OSError(errno.EINVAL)
        return a.value

    def _fit(self, c, payload):
        limit = c.mtu - 3
        if len(payload) > limit:
            _sim_stats["notify_truncated"] += 1
            return payload[:limit]
        return payload

    def _indicate(self, conn_handle, c, value_handle, payload):
        if c.inflight:
            # ATT allows one outstanding indication per connection; NimBLE only asserts this in
            # debug builds, so the simulation sends it anyway and counts the firmware bug.
            _sim_stats["indicate_overlap"] += 1
            _log("indication on %d while %d is unacknowledged" % (value_handle, c.inflight))
        c.inflight = value_handle
        self._send({"op": "indicate", "conn": conn_handle, "handle": value_handle,
                    "data": _hex(self._fit(c, payload))})

    def _send_update(self, value_handle, a):
        for conn_handle in list(self._conns):
            c = self._conns[conn_handle]
            bits = c.sub.get(value_handle, 0)
            if bits & 0x0001 and a.flags & FLAG_NOTIFY:
                try:
                    self._send({"op": "notify", "conn": conn_handle, "handle": value_handle,
                                "data": _hex(self._fit(c, a.value))}, True)
                except OSError:
                    pass  # NimBLE drops an update it has no buffer for; counted in tx_dropped
            elif bits & 0x0002 and a.flags & FLAG_INDICATE:
                if c.inflight:
                    if value_handle not in c.pending:
                        c.pending.append(value_handle)
                else:
                    self._indicate(conn_handle, c, value_handle, a.value)

    def _start(self):
        spec = _getenv("NECKLINE_VBLE_BRIDGE")
        if not spec or ":" not in spec:
            _log("NECKLINE_VBLE_BRIDGE is not set (expected host:port)")
            raise OSError(errno.ENODEV)
        host, port = spec.rsplit(":", 1)
        self._addr_type, self._addr = _device_address()
        sockaddr = socket.getaddrinfo(host, int(port))[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect(sockaddr)
        except OSError:
            s.close()
            _log("cannot reach the bridge at " + spec)
            raise
        s.setblocking(False)
        self._sock = s
        self._poller = select.poll()
        self._poller.register(s, select.POLLIN)
        self._rx = b""
        self._tx = b""
        self._active = True
        name = _getenv("NECKLINE_VBLE_NAME") or (
            "Neckline-%02X%02X" % (self._addr[4], self._addr[5]))
        self._send({"op": "hello", "addr": _addr_str(self._addr), "addr_type": self._addr_type,
                    "proto": 1, "name": name})
        self._load_irk()
        self._maybe_start_task()

    def _stop(self):
        self._active = False
        self._close()
        self._conns = {}
        self._adv = None
        self._deferred = []

    def _close(self):
        s = self._sock
        self._sock = None
        if s is not None:
            try:
                self._flush(200)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _load_irk(self):
        # NimBLE asks the application for its identity resolving key at start-up and stores a
        # fresh one if there is none.
        key = memoryview(b"irk")
        irk = self._call_irq(_IRQ_GET_SECRET, (_SEC_TYPE_OUR_IRK, 0, key))
        if irk is None or len(bytes(irk)) != 16:
            self._call_irq(_IRQ_SET_SECRET, (_SEC_TYPE_OUR_IRK, key, memoryview(_random(16))))

    def _drop_conn(self, conn_handle, c):
        del self._conns[conn_handle]
        self._deferred.append((conn_handle, c))

    def _call_irq(self, event, data):
        h = self._irq
        if h is None:
            return None
        try:
            return h(event, data)
        except Exception as e:  # the real stack prints and carries on
            _sim_stats["irq_errors"] += 1
            _log("unhandled exception in IRQ handler (event %d):" % event)
            _print_exception(e)
            return None

    # ------------------------------------------------------------------ transport

    def _send(self, msg, droppable=False):
        if self._sock is None:
            raise OSError(errno.ENOTCONN)
        line = (json.dumps(msg) + "\n").encode()
        if self._tx:
            self._flush(0)
            if self._tx and droppable:
                # The bridge is not keeping up: a real stack runs out of buffers and says ENOMEM.
                _sim_stats["tx_dropped"] += 1
                raise OSError(errno.ENOMEM)
        self._tx += line
        _sim_stats["tx_messages"] += 1
        self._flush(0 if droppable else _TX_WAIT_MS)

    def _flush(self, wait_ms):
        start = _ticks_ms()
        while self._tx and self._sock is not None:
            try:
                n = self._sock.send(self._tx)
            except OSError as e:
                if e.args[0] != errno.EAGAIN:
                    self._lost(e)
                    return
                n = 0
            if n:
                self._tx = self._tx[n:]
                continue
            left = wait_ms - _ticks_diff(_ticks_ms(), start)
            if left <= 0:
                if wait_ms > 0:
                    _log("bridge not reading; %d bytes wait to be sent" % len(self._tx))
                return
            p = select.poll()
            p.register(self._sock, select.POLLOUT)
            p.poll(left)

    def _lost(self, why):
        _sim_stats["bridge_lost"] += 1
        _log("bridge connection lost (%s)" % (why,))
        s = self._sock
        self._sock = None
        self._tx = b""
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
        for conn_handle in list(self._conns):
            self._drop_conn(conn_handle, self._conns[conn_handle])
        self._adv = None

    def _maybe_start_task(self):
        if self._task is not None or asyncio is None or self._sock is None:
            return
        if _MICROPYTHON:
            self._task = asyncio.create_task(self._run())
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # started later, from the first call made inside a running loop
        self._task = loop.create_task(self._run())

    async def _run(self):
        # Real BLE events arrive as scheduled callbacks; here they come from this task, whenever
        # the firmware's asyncio loop runs.
        try:
            while self._sock is not None or self._deferred:
                n = self._pump(0)
                if _MICROPYTHON:
                    await asyncio.sleep_ms(0 if n else 3)
                else:
                    await asyncio.sleep(0 if n else 0.003)
        finally:
            self._task = None

    def _pump(self, timeout_ms=0):
        n = self._deliver_deferred()
        if self._sock is None:
            return n
        if self._tx:
            self._flush(0)
        if self._sock is None or not self._poller.poll(timeout_ms if n == 0 else 0):
            return n
        while self._sock is not None:
            try:
                data = self._sock.recv(_RX_CHUNK)
            except OSError as e:
                if e.args[0] != errno.EAGAIN:
                    self._lost(e)
                break
            if not data:
                self._lost("closed by the bridge")
                break
            self._rx += data
            if len(data) < _RX_CHUNK or not self._poller.poll(0):
                break
        while True:
            i = self._rx.find(b"\n")
            if i < 0:
                break
            line = self._rx[:i]
            self._rx = self._rx[i + 1:]
            if line.strip():
                self._handle_line(line)
                n += 1
        n += self._deliver_deferred()
        return n

    def _deliver_deferred(self):
        n = 0
        while self._deferred:
            conn_handle, c = self._deferred.pop(0)
            if c.inflight:
                handle = c.inflight
                c.inflight = 0
                self._call_irq(_IRQ_GATTS_INDICATE_DONE, (conn_handle, handle, _BLE_HS_ENOTCONN))
            self._call_irq(_IRQ_CENTRAL_DISCONNECT,
                           (conn_handle, c.addr_type, memoryview(c.addr)))
            n += 1
        return n

    # ------------------------------------------------------------------ internals: bridge side

    def _handle_line(self, line):
        _sim_stats["rx_messages"] += 1
        try:
            m = json.loads(line)
            op = m["op"]
        except (ValueError, KeyError, TypeError):
            _sim_stats["rx_bad"] += 1
            _log("malformed bridge message ignored: %r" % (line[:80],))
            return
        fn = _HANDLERS.get(op)
        if fn is None:
            _sim_stats["rx_unknown_op"] += 1
            _log("unknown bridge op ignored: %r" % (op,))
            return
        try:
            fn(self, m)
        except (KeyError, ValueError, TypeError) as e:
            _sim_stats["rx_bad"] += 1
            _log("bad %r message ignored: %r" % (op, e))

    def _answer(self, msg):
        try:
            self._send(msg)
        except OSError as e:
            _log("could not answer the bridge: %r" % (e,))

    def _on_connect(self, m):
        conn_handle = m["conn"]
        addr = _addr_bytes(m["addr"])
        c = _Conn(m.get("addr_type", 0), addr)
        self._conns[conn_handle] = c
        self._adv = None  # NimBLE stops advertising when a central connects
        self._call_irq(_IRQ_CENTRAL_CONNECT, (conn_handle, c.addr_type, memoryview(addr)))

    def _on_disconnect(self, m):
        conn_handle = m["conn"]
        c = self._conns.get(conn_handle)
        if c is None:
            return  # already gone, e.g. the device disconnected it first
        self._drop_conn(conn_handle, c)

    def _on_mtu(self, m):
        conn_handle = m["conn"]
        c = self._conns.get(conn_handle)
        if c is None:
            _log("mtu for unknown connection %r ignored" % (conn_handle,))
            return
        mtu = m["mtu"]
        # The exchange settles on the smaller of both sides' MTUs.
        if mtu > self._cfg["mtu"]:
            _log("central MTU %d above the configured %d; using %d" %
                 (mtu, self._cfg["mtu"], self._cfg["mtu"]))
            mtu = self._cfg["mtu"]
        if mtu < _ATT_MTU_MIN:
            mtu = _ATT_MTU_MIN
        c.mtu = mtu
        self._call_irq(_IRQ_MTU_EXCHANGED, (conn_handle, mtu))

    def _on_conn_update(self, m):
        conn_handle = m["conn"]
        if conn_handle not in self._conns:
            return
        self._call_irq(_IRQ_CONNECTION_UPDATE, (conn_handle, m.get("interval", 0),
                       m.get("latency", 0), m.get("timeout", 0), m.get("status", 0)))

    def _permission(self, c, flags, enc_flag, auth_flag):
        if not _sim_att_security:
            return 0
        if flags & enc_flag and not c.encrypted:
            return _ATT_INSUFFICIENT_ENCRYPTION
        if flags & auth_flag and not c.authenticated:
            return _ATT_INSUFFICIENT_AUTHENTICATION
        return 0

    def _on_write(self, m):
        rid = m["id"]
        conn_handle = m["conn"]
        handle = m["handle"]
        data = binascii.unhexlify(m.get("data", ""))
        c = self._conns.get(conn_handle)
        status = 0
        if c is None:
            status = _ATT_UNLIKELY
        elif handle in self._cccd:
            status = self._write_cccd(c, self._cccd[handle], data)
        else:
            a = self._attrs.get(handle)
            if a is None:
                status = _ATT_INVALID_HANDLE
            elif not a.flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
                status = _ATT_WRITE_NOT_PERMITTED
            else:
                status = self._permission(c, a.flags, _F_WRITE_ENCRYPTED, _F_WRITE_AUTHENTICATED)
            if status == 0:
                offset = len(a.value) if a.append else 0
                room = a.maxlen - offset
                if len(data) > room:
                    _sim_stats["write_truncated"] += 1
                    data = data[:room if room > 0 else 0]
                a.value = (a.value + data) if a.append else data
                self._call_irq(_IRQ_GATTS_WRITE, (conn_handle, handle))
        self._answer({"op": "write_resp", "id": rid, "status": status})

    def _write_cccd(self, c, value_handle, data):
        if len(data) != 2:
            return _ATT_INVALID_VALUE_LENGTH
        bits = data[0] | (data[1] << 8)
        flags = self._attrs[value_handle].flags
        allowed = (0x0001 if flags & FLAG_NOTIFY else 0) | (0x0002 if flags & FLAG_INDICATE else 0)
        if bits & ~allowed:
            return _ATT_REQUEST_NOT_SUPPORTED
        if bits:
            c.sub[value_handle] = bits
        elif value_handle in c.sub:
            del c.sub[value_handle]
        return 0

    def _on_read(self, m):
        rid = m["id"]
        conn_handle = m["conn"]
        handle = m["handle"]
        c = self._conns.get(conn_handle)
        status = 0
        value = b""
        if c is None:
            status = _ATT_UNLIKELY
        elif handle in self._cccd:
            bits = c.sub.get(self._cccd[handle], 0)
            value = bytes((bits & 0xFF, bits >> 8))
        else:
            a = self._attrs.get(handle)
            if a is None:
                status = _ATT_INVALID_HANDLE
            elif not a.flags & FLAG_READ:
                status = _ATT_READ_NOT_PERMITTED
            else:
                status = self._permission(c, a.flags, _F_READ_ENCRYPTED, _F_READ_AUTHENTICATED)
            if status == 0 and a.flags & _F_READ_AUTHORIZED:
                deny = self._call_irq(_IRQ_GATTS_READ_REQUEST, (conn_handle, handle))
                if deny:
                    status = _ATT_READ_NOT_PERMITTED
            if status == 0:
                value = self.gatts_read(handle)
        self._answer({"op": "read_resp", "id": rid, "status": status, "data": _hex(value)})

    def _on_pair(self, m):
        rid = m["id"]
        conn_handle = m["conn"]
        c = self._conns.get(conn_handle)
        if c is None or (self._cfg["mitm"] and self._cfg["io"] == _IO_NO_INPUT_OUTPUT):
            # Without input or output Just Works cannot give the MITM protection required.
            self._answer({"op": "pair_resp", "id": rid, "status": _SMP_FAIL, "bonded": False,
                          "ltk": ""})
            return
        bond = self._cfg["bond"] and m.get("bond", True)
        ltk = _random(16)
        if bond:
            key = bytes((c.addr_type,)) + c.addr
            if not self._call_irq(_IRQ_SET_SECRET, (_SEC_TYPE_PEER, memoryview(key),
                                                    memoryview(ltk))):
                self._answer({"op": "pair_resp", "id": rid, "status": _SMP_FAIL,
                              "bonded": False, "ltk": ""})
                return
        c.encrypted = True
        c.authenticated = False  # Just Works
        c.bonded = bool(bond)
        c.key_size = 16
        # The real module passes these fields as small ints, not bools.
        self._call_irq(_IRQ_ENCRYPTION_UPDATE, (conn_handle, 1, 0, int(c.bonded), 16))
        self._answer({"op": "pair_resp", "id": rid, "status": 0, "bonded": c.bonded,
                      "ltk": _hex(ltk)})

    def _on_encrypt(self, m):
        rid = m["id"]
        conn_handle = m["conn"]
        c = self._conns.get(conn_handle)
        if c is None:
            self._answer({"op": "encrypt_resp", "id": rid, "status": _SMP_FAIL, "bonded": False})
            return
        want = binascii.unhexlify(m.get("ltk", ""))
        key = bytes((c.addr_type,)) + c.addr
        have = self._call_irq(_IRQ_GET_SECRET, (_SEC_TYPE_PEER, 0, memoryview(key)))
        if have is None or bytes(have) != want or not want:
            c.encrypted = False
            c.bonded = False
            self._call_irq(_IRQ_ENCRYPTION_UPDATE, (conn_handle, 0, 0, 0, 0))
            self._answer({"op": "encrypt_resp", "id": rid, "status": _SMP_FAIL, "bonded": False})
            return
        c.encrypted = True
        c.bonded = True
        c.key_size = 16
        self._call_irq(_IRQ_ENCRYPTION_UPDATE, (conn_handle, 1, int(c.authenticated), 1, 16))
        self._answer({"op": "encrypt_resp", "id": rid, "status": 0, "bonded": True})

    def _on_indicate_done(self, m):
        conn_handle = m["conn"]
        c = self._conns.get(conn_handle)
        if c is None:
            return
        handle = m.get("handle", c.inflight)
        c.inflight = 0
        self._call_irq(_IRQ_GATTS_INDICATE_DONE, (conn_handle, handle, m.get("status", 0)))
        if c.pending and not c.inflight and conn_handle in self._conns:
            value_handle = c.pending.pop(0)
            self._indicate(conn_handle, c, value_handle, self._attrs[value_handle].value)


_HANDLERS = {
    "connect": BLE._on_connect,
    "disconnect": BLE._on_disconnect,
    "mtu": BLE._on_mtu,
    "write": BLE._on_write,
    "read": BLE._on_read,
    "pair": BLE._on_pair,
    "encrypt": BLE._on_encrypt,
    "indicate_done": BLE._on_indicate_done,
    "conn_update": BLE._on_conn_update,
}


def _addr_str(addr):
    return ":".join("%02x" % b for b in addr)


def _addr_bytes(s):
    b = binascii.unhexlify(s.replace(":", ""))
    if len(b) != 6:
        raise ValueError("address must have 6 bytes")
    return b


def _device_address():
    spec = _getenv("NECKLINE_VBLE_ADDR")
    if spec:
        return 0, _addr_bytes(spec)
    import machine

    uid = bytes(machine.unique_id())
    uid = (b"\x00" * 6 + uid)[-6:]
    return 0, uid


def _sim_pump(timeout_ms=0):
    """Process pending bridge messages (waiting up to timeout_ms for one); returns how many."""
    ble = BLE._instance
    if ble is None or not ble._active:
        return 0
    return ble._pump(timeout_ms)
