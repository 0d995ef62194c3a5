"""Bond store: the BLE stack's secrets (_IRQ_SET_SECRET / _IRQ_GET_SECRET), kept in one small file.

The stack hands the application opaque (sec_type, key, value) triples: on NimBLE sec_type 1/2 are
our/the peer's security material keyed by the 7-byte peer address, 3 is a CCCD and 10 our identity
resolving key (key b"irk"). The store keeps them in insertion order, evicts the oldest peer when
full, and rewrites the file on every change (bonding is rare), so a bond made just before a reset
survives it.

File layout (little-endian):

    0   4  magic b"NKB1"
    4   1  entry count N
    then N entries: u8 sec_type, u8 key length K, u16 value length V, K key bytes, V value bytes
    last 4 bytes: CRC-32 of everything before them

A damaged file is reported, counted and ignored (the device then simply has no bonds). The file is
written to a temporary name and renamed into place; where the platform has os.chmod (CPython) it is
made owner-only before any secret is written. Nothing here ever prints a key or value.
"""

import os
import struct

try:
    from binascii import crc32
except ImportError:  # a port built without CRC-32: files are then written and read unchecked
    crc32 = None

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAGIC = b"NKB1"
SEC_TYPE_OUR_IRK = const(10)
MAX_ENTRIES = const(24)
_MAX_KEY = const(64)
_MAX_VALUE = const(512)


def _crc(data):
    if crc32 is None:
        return 0
    return crc32(data) & 0xFFFFFFFF


class BondStore:
    """In-memory list of (sec_type, key, value) mirrored to `path`."""

    def __init__(self, path="bonds.bin", max_entries=MAX_ENTRIES, log=None):
        self.path = path
        self.max_entries = max_entries
        self._log = log or _print_log
        self._entries = []
        self._peers = 0  # cached: the status value asks for it often
        self.load_errors = 0
        self.save_errors = 0
        self.evictions = 0

    # ---------------------------------------------------------------- persistence

    def load(self):
        """Read the file; returns the number of entries (0 if there is none or it is damaged)."""
        self._entries = []
        self._peers = 0
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return 0
        entries = _decode(data)
        if entries is None:
            self.load_errors += 1
            self._log("bond store %s is damaged (%d bytes); starting without bonds"
                      % (self.path, len(data)))
            return 0
        self._entries = entries
        self._count_peers()
        return len(entries)

    def save(self):
        """Write the file (or remove it when empty); True on success."""
        self._count_peers()
        if not self._entries:
            return self._remove()
        data = _encode(self._entries)
        tmp = self.path + ".tmp"
        try:
            f = open(tmp, "wb")
            try:
                if hasattr(os, "chmod"):
                    os.chmod(tmp, 0o600)
                f.write(data)
            finally:
                f.close()
            try:
                os.rename(tmp, self.path)
            except OSError:
                # FAT cannot rename onto an existing file.
                os.remove(self.path)
                os.rename(tmp, self.path)
        except OSError as e:
            self.save_errors += 1
            self._log("bond store %s not written: %r" % (self.path, e))
            return False
        return True

    def _remove(self):
        for p in (self.path, self.path + ".tmp"):
            try:
                os.remove(p)
            except OSError:
                pass
        try:
            os.stat(self.path)
        except OSError:
            return True
        self.save_errors += 1
        self._log("bond store %s could not be removed" % self.path)
        return False

    # ---------------------------------------------------------------- the stack's view

    def get(self, sec_type, index, key):
        """_IRQ_GET_SECRET: the value for (sec_type, key); for key None the index'th of the type."""
        if key is None:
            i = 0
            for t, _, v in self._entries:
                if t == sec_type:
                    if i == index:
                        return v
                    i += 1
            return None
        key = bytes(key)
        for t, k, v in self._entries:
            if t == sec_type and k == key:
                return v
        return None

    def set(self, sec_type, key, value):
        """_IRQ_SET_SECRET: store (value None deletes); True if stored (or deleted) and saved."""
        key = bytes(key)
        if value is None:
            if not self._drop(sec_type, key):
                return False
            return self.save()
        value = bytes(value)
        if len(key) > _MAX_KEY or len(value) > _MAX_VALUE:
            self._log("bond store: secret of type %d too large (%d/%d bytes), refused"
                      % (sec_type, len(key), len(value)))
            return False
        self._drop(sec_type, key)
        while len(self._entries) >= self.max_entries and self._evict_oldest_peer(key):
            pass
        if len(self._entries) >= self.max_entries:
            self._log("bond store full, secret of type %d refused" % sec_type)
            self.save()  # keep the file in step with what was dropped to make room
            return False
        self._entries.append((sec_type, key, value))
        return self.save()

    def _drop(self, sec_type, key):
        kept = [e for e in self._entries if not (e[0] == sec_type and e[1] == key)]
        removed = len(kept) != len(self._entries)
        self._entries = kept
        return removed

    def _evict_oldest_peer(self, keep_key):
        for t, k, _ in self._entries:
            if t != SEC_TYPE_OUR_IRK and k != keep_key:
                self._entries = [e for e in self._entries if e[1] != k or e[0] == SEC_TYPE_OUR_IRK]
                self.evictions += 1
                self._log("bond store full: forgot the oldest peer")
                return True
        return False

    # ---------------------------------------------------------------- for the firmware

    def peer_count(self):
        """Number of distinct bonded peers."""
        return self._peers

    def _count_peers(self):
        seen = []
        for t, k, _ in self._entries:
            if t != SEC_TYPE_OUR_IRK and k not in seen:
                seen.append(k)
        self._peers = len(seen)

    def clear(self):
        """Forget every peer (our own IRK stays); returns the number of peers forgotten."""
        n = self.peer_count()
        self._entries = [e for e in self._entries if e[0] == SEC_TYPE_OUR_IRK]
        if not self.save():
            return -1
        return n

    def __len__(self):
        return len(self._entries)


def _encode(entries):
    out = bytearray(_MAGIC)
    out.append(len(entries))
    for t, k, v in entries:
        out += struct.pack("<BBH", t, len(k), len(v))
        out += k
        out += v
    out += struct.pack("<I", _crc(out))
    return bytes(out)


def _decode(data):
    """Entries from file bytes, or None if anything is off."""
    if len(data) < 9 or data[0:4] != _MAGIC:
        return None
    body = data[:-4]
    if crc32 is not None and struct.unpack("<I", data[-4:])[0] != _crc(body):
        return None
    n = body[4]
    off = 5
    entries = []
    for _ in range(n):
        if off + 4 > len(body):
            return None
        t, kl, vl = struct.unpack_from("<BBH", body, off)
        off += 4
        if off + kl + vl > len(body):
            return None
        entries.append((t, bytes(body[off:off + kl]), bytes(body[off + kl:off + kl + vl])))
        off += kl + vl
    if off != len(body):
        return None
    return entries


def _print_log(msg):
    print("bonds: " + msg)
