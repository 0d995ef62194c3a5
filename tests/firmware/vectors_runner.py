"""Check firmware/wearable/proto.py against the golden vectors in tests/vectors/.

Runs unchanged under MicroPython and CPython, with firmware/ on the import path:

    MICROPYPATH=firmware micropython tests/firmware/vectors_runner.py [VECTOR_DIR]
    PYTHONPATH=firmware python tests/firmware/vectors_runner.py [VECTOR_DIR]

Every valid vector is encoded with the device encoders into one preallocated buffer and compared
byte for byte; every control-point request is fed to the device parser; every bad request must get
the expected status and response. Prints one failure line per failed check, then
"vectors: N passed, M failed"; exits 1 on any failure.
"""

import binascii
import json
import sys

from wearable import proto

BUF = bytearray(proto.MAX_PAYLOAD)
# Encoders must write every byte they claim: start each check from a recognisable fill.
FILL = b"\xa5" * proto.MAX_PAYLOAD

passed = 0
failures = []


def vector_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    here = __file__.replace("\\", "/").rsplit("/", 1)[0] if "/" in __file__ else "."
    return here + "/../vectors"


def load(name):
    with open(vector_dir() + "/" + name) as f:
        return json.load(f)


def check(name, ok, detail=""):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(name + (": " + detail if detail else ""))


def expect_bytes(name, n, expected):
    got = bytes(BUF[:n])
    check(name, got == expected, "got " + binascii.hexlify(got).decode())


def angle(v):
    return proto.NO_VALUE if v is None else v


def run_samples():
    doc = load("samples.json")
    for mtu, count in doc["samples_per_packet"].items():
        check("samples_per_packet(" + mtu + ")", proto.samples_per_packet(int(mtu)) == count)
    for v in doc["vectors"]:
        if not v["device_encodes"]:
            continue
        d = v["decoded"]
        expected = binascii.unhexlify(v["hex"])
        BUF[:] = FILL
        end = 0
        for i, s in enumerate(d["samples"]):
            end = proto.pack_sample(
                BUF, i, angle(s["flexion_cdeg"]), angle(s["lateral_cdeg"]),
                angle(s["rotation_cdeg"]), s["flags"],
            )
        n = proto.pack_samples_header(
            BUF, d["type"] == proto.T_SAMPLES_BACKFILL, d["count"], d["seq"], d["t_ms"],
            d["boot_id"], d["period_ms"],
        )
        check("samples/" + v["name"] + " length", n == end == len(expected))
        expect_bytes("samples/" + v["name"], n, expected)
        if "mtu" in v:
            mtu = v["mtu"]
            check("samples/" + v["name"] + " fills mtu",
                  proto.samples_per_packet(mtu) == d["count"] and n <= mtu - 3)


def run_summary():
    doc = load("summary.json")
    for mtu, count in doc["records_per_packet"].items():
        check("summary_records_per_packet(" + mtu + ")",
              proto.summary_records_per_packet(int(mtu)) == count)
    for v in doc["vectors"]:
        if not v["device_encodes"]:
            continue
        d = v["decoded"]
        expected = binascii.unhexlify(v["hex"])
        BUF[:] = FILL
        end = 0
        for i, r in enumerate(d["records"]):
            end = proto.pack_summary_record(
                BUF, i, r["start"], r["boot_id"], r["wear_s"], angle(r["mean_flexion_cdeg"]),
                angle(r["max_flexion_cdeg"]), r["strain_s"], r["episodes"], r["flags"],
            )
        n = proto.pack_summary_header(BUF, d["count"], d["first_index"])
        check("summary/" + v["name"] + " length", n == end == len(expected))
        expect_bytes("summary/" + v["name"], n, expected)
        if "mtu" in v:
            mtu = v["mtu"]
            check("summary/" + v["name"] + " fills mtu",
                  proto.summary_records_per_packet(mtu) == d["count"] and n <= mtu - 3)


def event_operands(code, p):
    if code == proto.EV_STRAIN_START:
        return angle(p["flexion_cdeg"]), 0, 0
    if code == proto.EV_STRAIN_END:
        return p["duration_s"], angle(p["peak_flexion_cdeg"]), 0
    if code == proto.EV_CALIBRATION:
        return p["result"], angle(p["pitch_cdeg"]), angle(p["roll_cdeg"])
    if code == proto.EV_BUFFER_OVERFLOW:
        return p["first_lost_seq"], p["last_lost_seq"], 0
    if code == proto.EV_LOW_BATTERY:
        return p["millivolts"], p["percent"], 0
    return 0, 0, 0


def run_events():
    seen = set()
    for v in load("events.json")["vectors"]:
        d = v["decoded"]
        seen.add(d["code"])
        a, b, c = event_operands(d["code"], d["payload"])
        BUF[:] = FILL
        n = proto.pack_event(BUF, d["code"], d["event_seq"], d["boot_id"], d["t_ms"], a, b, c)
        expect_bytes("events/" + v["name"], n, binascii.unhexlify(v["hex"]))
    every = set(range(1, proto.EV_LOW_BATTERY + 1))
    check("events cover every code", seen == every, str(sorted(seen)))


def run_status():
    for v in load("status.json")["vectors"]:
        if not v["device_encodes"]:
            continue
        d = v["decoded"]
        BUF[:] = FILL
        n = proto.pack_status(
            BUF, d["boot_id"], d["t_ms"], d["next_seq"], d["oldest_seq"], d["next_record"],
            d["oldest_record"], d["battery_mv"], d["battery_pct"], d["state"], d["period_ms"],
        )
        expect_bytes("status/" + v["name"], n, binascii.unhexlify(v["hex"]))


def run_config():
    for v in load("config.json")["vectors"]:
        entries = [(e["key"], e["value"]) for e in v["decoded"]["entries"]]
        BUF[:] = FILL
        n = proto.pack_config(BUF, entries)
        expect_bytes("config/" + v["name"], n, binascii.unhexlify(v["hex"]))
        for key, value in entries:
            if 1 <= key <= proto.MAX_CONFIG_KEY:
                check("config/" + v["name"] + " key " + str(key) + " in range",
                      proto.config_value_ok(key, value))


def expected_operands(d):
    ops = d["operands"]
    code = d["opcode"]
    if code == proto.OP_SET_TIME:
        return (ops["utc_epoch_ms"],)
    if code == proto.OP_SET_CONFIG:
        return tuple((e["key"], e["value"]) for e in ops["entries"])
    if code == proto.OP_REQUEST_RAW:
        return (ops["first_seq"], ops["last_seq"])
    if code == proto.OP_REQUEST_SUMMARY:
        return (ops["from_record"],)
    return ()


def response_operands(d):
    data = d["data"]
    if data is None:
        return 0, 0
    if "boot_id" in data:
        return data["boot_id"], data["t_ms"]
    if "samples_sent" in data:
        return data["samples_sent"], data["oldest_available_seq"]
    return data["records_sent"], data["next_record"]


def run_control():
    doc = load("control.json")
    for mtu, count in doc["config_entries_per_write"].items():
        check("config_entries_per_write(" + mtu + ")",
              proto.config_entries_per_write(int(mtu)) == count)
    for v in doc["vectors"]:
        raw = binascii.unhexlify(v["hex"])
        d = v["decoded"]
        name = "control/" + v["name"]
        if v["direction"] == "host_to_device":
            want = (proto.ST_SUCCESS, d["opcode"], expected_operands(d))
            got = proto.parse_request(raw)
            check(name, (got[0], got[1], tuple(got[2])) == want, repr(got))
            # The same write seen through a memoryview of a larger receive buffer.
            big = bytearray(raw) + b"\xee" * 4
            got = proto.parse_request(memoryview(big), len(raw))
            check(name + " (memoryview)", (got[0], got[1], tuple(got[2])) == want, repr(got))
        else:
            a, b = response_operands(d)
            BUF[:] = FILL
            n = proto.pack_cp_response(BUF, d["request_opcode"], d["status"], a, b)
            expect_bytes(name, n, raw)


def run_bad_requests():
    for v in load("malformed.json")["vectors"]:
        if v["decoder"] != "cp_request":
            continue
        raw = binascii.unhexlify(v["hex"])
        name = "malformed/" + v["name"]
        got = proto.parse_request(raw)
        want = (v["device_status"], v["response_opcode"], ())
        check(name, (got[0], got[1], tuple(got[2])) == want, repr(got))
        BUF[:] = FILL
        n = proto.pack_cp_response(BUF, got[1], got[0])
        expect_bytes(name + " response", n, binascii.unhexlify(v["response_hex"]))


def run_garbage():
    """The parser must answer any bytes without raising."""
    state = 12345
    ok = True
    detail = ""
    for trial in range(500):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        size = state % 24
        raw = bytearray(size)
        for i in range(size):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            raw[i] = (state >> 16) & 0xFF
        if size and trial % 2:
            raw[0] = trial % 10  # mostly real opcodes, so operand checks get exercised
        try:
            status = proto.parse_request(raw)[0]
        except Exception as e:  # the point is that nothing escapes
            ok = False
            detail = binascii.hexlify(raw).decode() + " raised " + repr(e)
            break
        if status not in (proto.ST_SUCCESS, proto.ST_UNSUPPORTED, proto.ST_INVALID_PARAMETER):
            ok = False
            detail = binascii.hexlify(raw).decode() + " gave status " + str(status)
            break
    check("parse_request on 500 garbage writes", ok, detail)


def _pack_many(n):
    i = 0
    while i < n:
        proto.pack_sample(BUF, i % proto.MAX_SAMPLES, -1234, 500, proto.NO_VALUE, 0x11)
        i += 1


def run_no_allocation():
    """Packing samples must not touch the heap (MicroPython only: CPython boxes every int)."""
    if sys.implementation.name != "micropython":
        return
    import gc

    _pack_many(3)  # warm up: first calls may intern or cache
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    _pack_many(1000)
    used = gc.mem_alloc() - before
    gc.enable()
    check("pack_sample allocates nothing", used == 0, str(used) + " bytes for 1000 samples")


def main():
    for step in (run_samples, run_summary, run_events, run_status, run_config, run_control,
                 run_bad_requests, run_garbage, run_no_allocation):
        try:
            step()
        except Exception as e:  # report the crash as a failure, keep going
            failures.append(step.__name__ + " crashed: " + repr(e))
    for failure in failures:
        print("FAIL", failure)
    impl = sys.implementation.name
    print("vectors: " + str(passed) + " passed, " + str(len(failures)) + " failed (" + impl + ")")
    sys.exit(1 if failures else 0)


main()
