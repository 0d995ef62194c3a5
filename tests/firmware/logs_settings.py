"""Settings file: defaults with a report for a missing, corrupt, oversized or wrong-version file;
per-value fallback for out-of-range values and wrong types; the strain combination check;
atomic save, a stale temp file, recovery from a lone temp file; SET_CONFIG all or nothing; a save
that cannot be written. Usage: logs_settings.py <dir>"""

import json
import os

from logs_common import check, done, eq, rmtree, workdir
from wearable import proto, strain
from wearable.settings import NAMES, Settings

WORK = workdir()
D = WORK + "/settings"
rmtree(D)
os.mkdir(D)
PATH = D + "/settings.json"
TMP = PATH + ".tmp"


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def new():
    return Settings(PATH, combo_check=strain.config_ok)


def is_default(s):
    return list(s.values) == list(proto.CONFIG_DEFAULTS) and s.imu == "auto" and s.remap == (
        1, 2, 3)


def good_doc():
    s = Settings(PATH)
    d = s.to_dict()
    d["config"]["strain_threshold_cdeg"] = 3000
    d["config"]["stream_period_ms"] = 40
    d["config"]["quiet_start_min"] = 1320
    d["imu"] = "lsm6dsox"
    d["remap"] = [-2, 1, 3]
    d["haptics_freq_hz"] = 180
    d["battery_divider_x1000"] = 3200
    return d


def fallback_case(name, data, reason):
    write(PATH, data)
    s = new()
    eq(s.load(), False, name + ": load reports a problem")
    check(is_default(s), name + ": defaults")
    check(reason in s.report, name + ": report " + repr(s.report) + " names " + repr(reason))
    eq(s.fallbacks, 1, name + ": fallback counted")
    eq(s.source, "defaults", name + ": source")


# missing file
s = new()
eq(s.load(), False, "missing: load")
check(is_default(s), "missing: defaults")
check("no settings file" in s.report, "missing: report " + repr(s.report))
eq(s.fallbacks, 1, "missing: counted")

# save and load back
s = new()
doc = good_doc()
write(PATH, json.dumps(doc).encode())
eq(s.load(), True, "good file loads")
eq(s.report, "", "good file: no report")
eq(s.values[proto.KEY_STRAIN_THRESHOLD_CDEG], 3000, "threshold from file")
eq(s.values[proto.KEY_STREAM_PERIOD_MS], 40, "period from file")
eq((s.imu, s.remap, s.haptics_freq_hz, s.battery_divider_x1000),
   ("lsm6dsox", (-2, 1, 3), 180, 3200), "board settings from file")
os.remove(PATH)
eq(s.save(), True, "save")
check(exists(PATH) and not exists(TMP), "saved by rename, no temp left")
s2 = new()
eq(s2.load(), True, "load what was saved")
eq(list(s2.values), list(s.values), "values survive save/load")
eq(s2.remap, (-2, 1, 3), "remap survives")
with open(PATH) as f:
    on_disk = json.loads(f.read())
eq(on_disk["version"], 1, "version field written")
eq(sorted(on_disk["config"].keys()), sorted(NAMES[1:]), "every v1 key written by name")

# whole-file fallbacks
fallback_case("corrupt", json.dumps(doc).encode()[:40], "corrupt JSON")
fallback_case("empty", b"", "corrupt JSON")
fallback_case("binary", b"\xff\xfe\x00\x81{", "corrupt JSON")
fallback_case("not an object", b"[1, 2, 3]", "not a JSON object")
d = good_doc()
d["version"] = 2
fallback_case("version 2", json.dumps(d).encode(), "version 2")
d.pop("version")
fallback_case("no version", json.dumps(d).encode(), "version None")
d["version"] = True
fallback_case("version true", json.dumps(d).encode(), "version")
fallback_case("huge", b" " * 5000 + b"{}", "larger than")

# value-level fallbacks: the rest of the file is kept
d = good_doc()
d["config"]["strain_hold_s"] = 99999  # out of range
d["config"]["snooze_s"] = 1.5  # wrong type
d["config"]["haptics_enabled"] = True  # a bool is not an int here
d["config"].pop("clear_hold_s")  # missing
d["config"]["future_key"] = 7  # unknown: ignored, counted
d["remap"] = [1, 1, 3]
d["imu"] = "bmi270"
d["haptics_freq_hz"] = 5
d["extra"] = {}
write(PATH, json.dumps(d).encode())
s = new()
eq(s.load(), False, "invalid values: load reports")
eq(s.fallbacks, 0, "invalid values: the file is still used")
eq(s.source, "file", "invalid values: source")
eq(s.invalid, 7, "invalid values counted")
eq(s.unknown, 2, "unknown names counted")
for key in (proto.KEY_STRAIN_HOLD_S, proto.KEY_SNOOZE_S, proto.KEY_HAPTICS_ENABLED,
            proto.KEY_CLEAR_HOLD_S):
    eq(s.values[key], proto.CONFIG_DEFAULTS[key], NAMES[key] + " back to default")
eq(s.values[proto.KEY_STRAIN_THRESHOLD_CDEG], 3000, "valid value kept")
eq((s.remap, s.imu, s.haptics_freq_hz), ((1, 2, 3), "auto", 200), "board settings defaulted")
eq(s.battery_divider_x1000, 3200, "valid board setting kept")
check("7 missing or invalid" in s.report and "strain_hold_s" in s.report and "..." in s.report,
      "report lists them: " + repr(s.report))

# combination: hysteresis not below the threshold -> the strain keys go back together
d = good_doc()
d["config"]["hysteresis_cdeg"] = 2000
d["config"]["lateral_threshold_cdeg"] = 1500
write(PATH, json.dumps(d).encode())
s = new()
eq(s.load(), False, "inconsistent strain keys")
eq(s.values[proto.KEY_HYSTERESIS_CDEG], proto.CONFIG_DEFAULTS[proto.KEY_HYSTERESIS_CDEG],
   "hysteresis reset")
eq(s.values[proto.KEY_STRAIN_THRESHOLD_CDEG], 2500, "threshold reset with it")
eq(s.values[proto.KEY_STREAM_PERIOD_MS], 40, "other keys kept")
check("strain keys together" in s.report, "combination reported: " + repr(s.report))

# atomic save: a stale temp file next to a good file is ignored and removed
write(PATH, json.dumps(good_doc()).encode())
write(TMP, b'{"version": 1, "conf')
s = new()
eq(s.load(), True, "good file wins over a stale temp")
check(not exists(TMP), "stale temp removed")
# a reset between removing the old file and the rename (FAT path): the temp file is taken
os.remove(PATH)
d = good_doc()
d["config"]["snooze_s"] = 1234
write(TMP, json.dumps(d).encode())
s = new()
eq(s.load(), False, "lone temp: reported")
eq(s.source, "temp", "lone temp: source")
eq(s.values[proto.KEY_SNOOZE_S], 1234, "lone temp: values")
check("recovered" in s.report, "lone temp: report " + repr(s.report))
check(exists(PATH) and not exists(TMP), "lone temp promoted")
s = new()
eq(s.load(), True, "after promotion")

# SET_CONFIG: all or nothing, then saved
s = new()
s.load()
before = list(s.values)
eq(s.set_config(((proto.KEY_STRAIN_HOLD_S, 30), (proto.KEY_SNOOZE_S, 90000))),
   proto.ST_INVALID_PARAMETER, "one bad value refuses all")
eq(list(s.values), before, "nothing applied")
eq(s.set_config(((proto.KEY_HYSTERESIS_CDEG, 2900),)), proto.ST_INVALID_PARAMETER,
   "hysteresis above a threshold refused")
eq(s.set_config(((99, 1),)), proto.ST_INVALID_PARAMETER, "unknown key refused")
eq(s.set_config(((proto.KEY_STRAIN_HOLD_S, 30), (proto.KEY_SNOOZE_S, 600))), proto.ST_SUCCESS,
   "good SET_CONFIG")
s2 = new()
s2.load()
eq((s2.values[proto.KEY_STRAIN_HOLD_S], s2.values[proto.KEY_SNOOZE_S]), (30, 600),
   "SET_CONFIG persisted")
buf = bytearray(64)
n = proto.pack_config(buf, s2.entries())
eq(n, 56, "config value of eleven keys")
try:
    s2.set_remap((1, 2, 2))
    check(False, "bad remap accepted")
except ValueError:
    check(True, "")
try:
    s2.set_imu("bmi270")
    check(False, "bad imu accepted")
except ValueError:
    check(True, "")
s2.set_remap((3, -1, -2))
eq(s2.remap, (3, -1, -2), "set_remap")

# a save that cannot be written: counted, reported, values stay in force
s = Settings(D + "/no/such/dir/settings.json")
eq(s.set_config(((proto.KEY_SNOOZE_S, 60),)), proto.ST_SUCCESS, "applied without storage")
eq(s.values[proto.KEY_SNOOZE_S], 60, "value in force")
eq(s.save_errors, 1, "save error counted")
check("save failed" in s.report, "save failure reported: " + repr(s.report))
eq(s.load(), False, "load from a missing directory falls back")

done("logs_settings")
