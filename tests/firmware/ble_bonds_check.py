"""Exercise firmware/wearable/bonds.py; run in an empty directory under MicroPython or CPython.

Prints one JSON object of observations; test_ble.py checks them and that both interpreters agree.
"""

import json

from wearable.bonds import BondStore

A = b"\x00\xaa\xaa\xaa\xaa\xaa\x01"
B = b"\x00\xbb\xbb\xbb\xbb\xbb\x02"
C = b"\x01\xcc\xcc\xcc\xcc\xcc\x03"
logged = []
r = {}

s = BondStore("b.bin", max_entries=5, log=logged.append)
r["empty_load"] = s.load()
r["irk"] = s.set(10, b"irk", b"I" * 16)
r["a"] = [s.set(2, A, b"a2" * 8), s.set(1, A, b"a1" * 8)]
r["get_a"] = s.get(2, 0, A).decode()
r["get_index"] = [v.decode() if v else None for v in (s.get(2, 0, None), s.get(2, 1, None))]
r["replace"] = s.set(2, A, b"A2" * 8)
r["after_replace"] = [len(s), s.get(2, 0, A).decode()]
r["delete_missing"] = s.set(2, B, None)
r["b"] = [s.set(2, B, b"b2" * 8), s.set(1, B, b"b1" * 8)]
r["c"] = s.set(2, C, b"c2" * 8)  # full: the oldest peer (A) goes, our IRK stays
r["after_evict"] = [len(s), s.peer_count(), s.get(2, 0, A), s.get(10, 0, b"irk") is not None,
                    s.evictions]

t = BondStore("b.bin")
r["reload"] = [t.load(), t.peer_count(), t.get(2, 0, C).decode()]

with open("b.bin", "rb") as f:
    data = bytearray(f.read())
data[12] ^= 0x40
with open("b.bin", "wb") as f:
    f.write(data)
u = BondStore("b.bin", log=logged.append)
r["damaged"] = [u.load(), u.load_errors, u.peer_count()]
with open("b.bin", "wb") as f:
    f.write(data[:10])
r["truncated"] = [u.load(), u.load_errors]

v = BondStore("c.bin")
v.set(10, b"irk", b"I" * 16)
v.set(2, A, b"x" * 16)
r["clear"] = [v.clear(), v.peer_count(), len(v)]
w = BondStore("c.bin")
r["clear_persisted"] = [w.load(), w.peer_count()]
x = BondStore("d.bin")
x.set(2, A, b"x" * 16)
x.clear()
try:
    open("d.bin", "rb").close()
    r["removed"] = False
except OSError:
    r["removed"] = True
r["logged"] = len(logged)
r["secret_in_log"] = any("a2" in m or "A2" in m or "b2" in m for m in logged)
print(json.dumps(r))
