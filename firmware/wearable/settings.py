"""Device settings persisted as one small JSON file; docs/firmware-storage.md shows the format.

Holds the eleven v1 config keys (docs/protocol.md §9; ranges and defaults are proto's), the IMU
choice, the IMU axis remap, the haptic motor's PWM frequency and the battery divider ratio.

Loading never raises. A missing, unreadable or corrupt file, or one of another version, gives
the defaults; a single bad value gives that value's default. Either way `report` says why in one
line and the counters (`fallbacks`, `invalid`, `unknown`) count it, for the status and the log.
Saving writes a temporary file and renames it over the old one, so a reset leaves either the old
or the new file; on a filesystem whose rename will not replace a file (FAT) the old file is
removed first, and a lone temporary file is picked up by the next load.

    s = Settings("settings.json", combo_check=strain.config_ok)
    s.load()                                    # False when anything fell back; see s.report
    s.values[proto.KEY_STREAM_PERIOD_MS]        # array('i') indexed by config key
    status = s.set_config(entries)              # SET_CONFIG operands: all or nothing, then saved
    n = proto.pack_config(buf, s.entries())
"""

import json
import os
from array import array

from wearable import proto
from wearable.imu import parse_remap

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


VERSION = const(1)
MAX_FILE_BYTES = const(4096)  # a valid file is ~600 bytes; anything far larger is not ours

# JSON names of the config keys, indexed by key (protocol §9).
NAMES = (
    None,
    "strain_threshold_cdeg",
    "strain_hold_s",
    "hysteresis_cdeg",
    "clear_hold_s",
    "stream_period_ms",
    "haptics_enabled",
    "quiet_start_min",
    "quiet_end_min",
    "snooze_s",
    "extension_threshold_cdeg",
    "lateral_threshold_cdeg",
)
# Keys the strain detector checks together (combo_check); reset together when they disagree.
STRAIN_KEYS = (
    proto.KEY_STRAIN_THRESHOLD_CDEG,
    proto.KEY_STRAIN_HOLD_S,
    proto.KEY_HYSTERESIS_CDEG,
    proto.KEY_CLEAR_HOLD_S,
    proto.KEY_EXTENSION_THRESHOLD_CDEG,
    proto.KEY_LATERAL_THRESHOLD_CDEG,
)

IMU_CHOICES = ("auto", "mpu6050", "lsm6dsox")
DEFAULT_REMAP = (1, 2, 3)
# Board settings outside the protocol: name -> (default, min, max).
HAPTICS_FREQ_HZ = (200, 50, 1000)
BATTERY_DIVIDER_X1000 = (2000, 1000, 10000)  # battery volts per ADC volt, times 1000

_REPORT_NAMES = const(4)  # names listed in a report before "..."


def _is_int(v):
    return type(v) is int


class Settings:
    def __init__(self, path="settings.json", combo_check=None):
        self.path = path
        self.tmp = path + ".tmp"
        self.combo_check = combo_check
        self.values = array("i", proto.CONFIG_DEFAULTS)
        self.imu = IMU_CHOICES[0]
        self.remap = DEFAULT_REMAP
        self.haptics_freq_hz = HAPTICS_FREQ_HZ[0]
        self.battery_divider_x1000 = BATTERY_DIVIDER_X1000[0]
        self.source = "defaults"  # where the values came from: defaults, file or temp
        self.report = ""  # why the last load or save fell short; "" when it did not
        self.fallbacks = 0  # loads that gave up on the whole file
        self.invalid = 0  # single values replaced by their default
        self.unknown = 0  # names in the file this firmware does not know (ignored)
        self.save_errors = 0
        self.saves = 0

    # --- defaults ----------------------------------------------------------------------------
    def reset(self):
        """Back to the defaults (in RAM; save() to persist)."""
        for k in range(len(proto.CONFIG_DEFAULTS)):
            self.values[k] = proto.CONFIG_DEFAULTS[k]
        self.imu = IMU_CHOICES[0]
        self.remap = DEFAULT_REMAP
        self.haptics_freq_hz = HAPTICS_FREQ_HZ[0]
        self.battery_divider_x1000 = BATTERY_DIVIDER_X1000[0]

    def _fall_back(self, why):
        self.reset()
        self.source = "defaults"
        self.fallbacks += 1
        self.report = self.path + ": " + why + "; defaults used"
        return False

    # --- loading -----------------------------------------------------------------------------
    def load(self):
        """Read the file. True if every value came from it; otherwise see `report`."""
        self.report = ""
        doc, where, why = self._read(self.path)
        if where is None and why == "missing":
            doc, where, why = self._read(self.tmp)
            if where is not None:
                where = "temp"
            elif why == "missing":
                why = "no settings file"
        elif where is not None:
            self._remove(self.tmp)  # a save cut before its rename; the file in place is whole
        if where is None:
            return self._fall_back(why)
        if type(doc) is not dict:
            return self._fall_back("not a JSON object")
        ver = doc.get("version")
        if not _is_int(ver) or ver != VERSION:
            return self._fall_back("version " + repr(ver) + " is not " + str(VERSION))
        self.reset()
        bad = []
        cfg = doc.get("config", {})
        if type(cfg) is not dict:
            bad.append("config")
            cfg = {}
        for key in range(1, proto.MAX_CONFIG_KEY + 1):
            v = cfg.get(NAMES[key])
            if _is_int(v) and proto.config_value_ok(key, v):
                self.values[key] = v
            else:
                bad.append(NAMES[key])
        for name in cfg:
            if name not in NAMES:
                self.unknown += 1
        if self.combo_check is not None and not self.combo_check(self.values):
            for key in STRAIN_KEYS:
                self.values[key] = proto.CONFIG_DEFAULTS[key]
            bad.append("strain keys together")
        v = doc.get("imu")
        if v in IMU_CHOICES:
            self.imu = v
        else:
            bad.append("imu")
        v = doc.get("remap")
        if self._remap_ok(v):
            self.remap = (v[0], v[1], v[2])
        else:
            bad.append("remap")
        v = doc.get("haptics_freq_hz")
        if _is_int(v) and HAPTICS_FREQ_HZ[1] <= v <= HAPTICS_FREQ_HZ[2]:
            self.haptics_freq_hz = v
        else:
            bad.append("haptics_freq_hz")
        v = doc.get("battery_divider_x1000")
        if _is_int(v) and BATTERY_DIVIDER_X1000[1] <= v <= BATTERY_DIVIDER_X1000[2]:
            self.battery_divider_x1000 = v
        else:
            bad.append("battery_divider_x1000")
        for name in doc:
            if name not in ("version", "config", "imu", "remap", "haptics_freq_hz",
                            "battery_divider_x1000"):
                self.unknown += 1
        self.source = where
        if where == "temp":
            self._promote_tmp()
        if bad:
            self.invalid += len(bad)
            shown = ", ".join(bad[:_REPORT_NAMES]) + (", ..." if len(bad) > _REPORT_NAMES else "")
            self.report = (self.path + ": " + str(len(bad)) + " missing or invalid, defaults used: "
                           + shown)
            return False
        if where == "temp":
            self.report = self.path + ": recovered from " + self.tmp
            return False
        return True

    def _read(self, path):
        # (document, "file", "") or (None, None, reason). Never raises.
        try:
            f = open(path, "rb")
        except OSError:
            return None, None, "missing"
        try:
            try:
                data = f.read(MAX_FILE_BYTES + 1)
            finally:
                f.close()
        except OSError:
            return None, None, "unreadable"
        if len(data) > MAX_FILE_BYTES:
            return None, None, "larger than " + str(MAX_FILE_BYTES) + " bytes"
        try:
            return json.loads(data.decode()), "file", ""
        except Exception:  # whatever a damaged file makes the parser raise, it only means "corrupt"
            return None, None, "corrupt JSON"

    @staticmethod
    def _remap_ok(v):
        if type(v) is not list or len(v) != 3:
            return False
        for s in v:
            if not _is_int(s):
                return False
        try:
            parse_remap(v)
        except ValueError:
            return False
        return True

    def _promote_tmp(self):
        try:
            os.rename(self.tmp, self.path)
        except OSError:
            pass  # stays a temp file; load() finds it again next time

    @staticmethod
    def _remove(path):
        try:
            os.remove(path)
        except OSError:
            pass

    # --- saving ------------------------------------------------------------------------------
    def to_dict(self):
        cfg = {}
        for key in range(1, proto.MAX_CONFIG_KEY + 1):
            cfg[NAMES[key]] = self.values[key]
        return {
            "version": VERSION,
            "config": cfg,
            "imu": self.imu,
            "remap": list(self.remap),
            "haptics_freq_hz": self.haptics_freq_hz,
            "battery_divider_x1000": self.battery_divider_x1000,
        }

    def save(self):
        """Write the settings atomically. False (counted, reported) if the filesystem refused."""
        text = json.dumps(self.to_dict())
        try:
            f = open(self.tmp, "w")
            try:
                f.write(text)
                f.flush()
            finally:
                f.close()
            try:
                os.rename(self.tmp, self.path)
            except OSError:
                # FAT will not rename over an existing file. Between these two calls only the
                # temp file exists, and load() takes it.
                self._remove(self.path)
                os.rename(self.tmp, self.path)
        except OSError as e:
            self.save_errors += 1
            self.report = self.path + ": save failed (" + repr(e) + ")"
            return False
        self.saves += 1
        return True

    # --- protocol ----------------------------------------------------------------------------
    def check_config(self, entries):
        """Status SET_CONFIG deserves: every (key, value) in range and the result consistent."""
        trial = array("i", self.values)
        for key, value in entries:
            if not proto.config_value_ok(key, value):
                return proto.ST_INVALID_PARAMETER
            trial[key] = value
        if self.combo_check is not None and not self.combo_check(trial):
            return proto.ST_INVALID_PARAMETER
        return proto.ST_SUCCESS

    def set_config(self, entries, save=True):
        """Apply SET_CONFIG operands, all or nothing; returns ST_SUCCESS or ST_INVALID_PARAMETER.
        Applied values stay in force even if saving fails (counted in save_errors)."""
        st = self.check_config(entries)
        if st != proto.ST_SUCCESS:
            return st
        for key, value in entries:
            self.values[key] = value
        if save:
            self.save()
        return st

    def entries(self):
        """(key, value) pairs of every v1 key, for proto.pack_config."""
        return [(k, self.values[k]) for k in range(1, proto.MAX_CONFIG_KEY + 1)]

    def set_remap(self, remap):
        """Adopt a new remap; ValueError unless it is a signed permutation of 1, 2, 3."""
        parse_remap(remap)
        self.remap = (int(remap[0]), int(remap[1]), int(remap[2]))

    def set_imu(self, choice):
        if choice not in IMU_CHOICES:
            raise ValueError("imu must be one of " + ", ".join(IMU_CHOICES))
        self.imu = choice
