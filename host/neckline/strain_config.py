"""The one strain configuration both sides use (docs/strain.md, docs/protocol.md §9).

StrainConfig holds the eleven v1 config keys with the protocol's defaults and ranges. The host
pushes it to the device on connect (set_config_writes), so the firmware's detector
(firmware/wearable/strain.py) and the host's (neckline.strain) run on identical values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from neckline.control import encode_set_config
from neckline.errors import NecklineError
from neckline.protocol import (
    CONFIG_DEFAULTS,
    CONFIG_RANGES,
    Config,
    ConfigKey,
    config_entries_per_write,
)


class StrainConfigError(NecklineError, ValueError):
    """A strain setting, or a combination of them, the device would refuse."""


# Field name -> protocol key, in key order.
FIELD_KEYS: dict[str, ConfigKey] = {
    "threshold_cdeg": ConfigKey.STRAIN_THRESHOLD_CDEG,
    "hold_s": ConfigKey.STRAIN_HOLD_S,
    "hysteresis_cdeg": ConfigKey.HYSTERESIS_CDEG,
    "clear_hold_s": ConfigKey.CLEAR_HOLD_S,
    "stream_period_ms": ConfigKey.STREAM_PERIOD_MS,
    "haptics_enabled": ConfigKey.HAPTICS_ENABLED,
    "quiet_start_min": ConfigKey.QUIET_START_MIN,
    "quiet_end_min": ConfigKey.QUIET_END_MIN,
    "snooze_s": ConfigKey.SNOOZE_S,
    "extension_threshold_cdeg": ConfigKey.EXTENSION_THRESHOLD_CDEG,
    "lateral_threshold_cdeg": ConfigKey.LATERAL_THRESHOLD_CDEG,
}

# Keys the device checks against each other; every SET_CONFIG write must leave them consistent.
_LINKED = (
    ConfigKey.STRAIN_THRESHOLD_CDEG,
    ConfigKey.EXTENSION_THRESHOLD_CDEG,
    ConfigKey.LATERAL_THRESHOLD_CDEG,
)


def _d(key: ConfigKey) -> int:
    return CONFIG_DEFAULTS[key]


@dataclass(frozen=True)
class StrainConfig:
    """Strain detection, streaming and haptics settings; angles in centidegrees."""

    threshold_cdeg: int = _d(ConfigKey.STRAIN_THRESHOLD_CDEG)
    hold_s: int = _d(ConfigKey.STRAIN_HOLD_S)
    hysteresis_cdeg: int = _d(ConfigKey.HYSTERESIS_CDEG)
    clear_hold_s: int = _d(ConfigKey.CLEAR_HOLD_S)
    stream_period_ms: int = _d(ConfigKey.STREAM_PERIOD_MS)
    haptics_enabled: int = _d(ConfigKey.HAPTICS_ENABLED)
    quiet_start_min: int = _d(ConfigKey.QUIET_START_MIN)
    quiet_end_min: int = _d(ConfigKey.QUIET_END_MIN)
    snooze_s: int = _d(ConfigKey.SNOOZE_S)
    extension_threshold_cdeg: int = _d(ConfigKey.EXTENSION_THRESHOLD_CDEG)
    lateral_threshold_cdeg: int = _d(ConfigKey.LATERAL_THRESHOLD_CDEG)

    def __post_init__(self) -> None:
        for name, key in FIELD_KEYS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise StrainConfigError(f"{name} must be an integer, got {value!r}")
            low, high = CONFIG_RANGES[key]
            if not low <= value <= high:
                raise StrainConfigError(f"{name} must be {low}..{high}, got {value}")
        limit = min(
            self.threshold_cdeg, -self.extension_threshold_cdeg, self.lateral_threshold_cdeg
        )
        if self.hysteresis_cdeg >= limit:
            raise StrainConfigError(
                f"hysteresis_cdeg {self.hysteresis_cdeg} must be smaller than every threshold "
                f"magnitude (smallest: {limit})"
            )

    # --- derived -----------------------------------------------------------------------------
    @property
    def hold_ms(self) -> int:
        return self.hold_s * 1000

    @property
    def clear_hold_ms(self) -> int:
        return self.clear_hold_s * 1000

    @property
    def quiet_hours(self) -> tuple[int, int] | None:
        """(start, end) UTC minutes of the day, or None when quiet hours are off."""
        start, end = self.quiet_start_min, self.quiet_end_min
        if start < 0 or end < 0 or start == end:
            return None
        return start, end

    # --- protocol entries --------------------------------------------------------------------
    def entries(self) -> dict[ConfigKey, int]:
        """Every key with its value, in key order."""
        return {key: getattr(self, name) for name, key in FIELD_KEYS.items()}

    def values_by_key(self) -> list[int]:
        """Values indexed by key (index 0 unused), the layout the firmware's configure() takes."""
        out = [0] * (max(FIELD_KEYS.values()) + 1)
        for key, value in self.entries().items():
            out[key] = value
        return out

    @classmethod
    def from_entries(cls, entries: Mapping[ConfigKey, int] | Mapping[int, int]) -> StrainConfig:
        """Build from (key, value) entries; keys not given keep their defaults."""
        kwargs: dict[str, Any] = {}
        by_key = {key: name for name, key in FIELD_KEYS.items()}
        for key, value in entries.items():
            try:
                name = by_key[ConfigKey(key)]
            except ValueError:
                raise StrainConfigError(f"config key {key} is not a v1 key") from None
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def from_device(cls, config: Config) -> StrainConfig:
        """The configuration a device reported (its CONFIG read); unknown keys are ignored."""
        return cls.from_entries(config.values)

    def differences(self, config: Config) -> dict[ConfigKey, tuple[int, int | None]]:
        """Keys where a device's reported config differs: key -> (ours, device's or None)."""
        out: dict[ConfigKey, tuple[int, int | None]] = {}
        for key, value in self.entries().items():
            theirs = config.values.get(key)
            if theirs != value:
                out[key] = (value, theirs)
        return out

    def set_config_writes(self, mtu: int, current: StrainConfig | None = None) -> list[bytes]:
        """SET_CONFIG writes that take a device to this configuration, each fitting the MTU.

        The device checks every write on its own against the hysteresis rule, so the order
        matters when the hysteresis and the thresholds cannot share one write (MTU 23 takes 3
        entries): with the device's `current` configuration known, a shrinking hysteresis goes
        first and a growing one last; without it, the hysteresis is zeroed first (always valid)
        and set last. Every intermediate state is then one the device accepts.
        """
        per_write = config_entries_per_write(mtu)
        target = self.entries()
        rest = [k for k in target if k not in _LINKED and k != ConfigKey.HYSTERESIS_CDEG]
        groups: list[list[tuple[ConfigKey, int]]]
        linked: list[tuple[ConfigKey, int]] = [(k, target[k]) for k in _LINKED]
        hyst = (ConfigKey.HYSTERESIS_CDEG, self.hysteresis_cdeg)
        if per_write > len(_LINKED):
            groups = [[*linked, hyst]]
        elif current is not None and self.hysteresis_cdeg <= current.hysteresis_cdeg:
            groups = [[hyst], linked]
        elif current is not None:
            groups = [linked, [hyst]]
        else:
            groups = [[(ConfigKey.HYSTERESIS_CDEG, 0)], linked, [hyst]]
        # The remaining keys fill the free room of the last group, then further writes.
        items: list[tuple[ConfigKey, int]] = [(k, target[k]) for k in rest]
        last = groups[-1]
        while items and len(last) < per_write:
            last.append(items.pop(0))
        while items:
            groups.append(items[:per_write])
            items = items[per_write:]
        return [encode_set_config(group) for group in groups]

    def with_local_quiet_hours(
        self, start: time | None, end: time | None, tz: ZoneInfo, on: date | None = None
    ) -> StrainConfig:
        """This configuration with quiet hours given in local time, converted to the UTC minutes
        the device uses. The UTC offset is the one on `on` (default today); push again after a
        daylight-saving change. None for either turns quiet hours off."""
        if start is None or end is None:
            return replace(self, quiet_start_min=-1, quiet_end_min=-1)
        day = on or datetime.now(tz).date()
        return replace(
            self,
            quiet_start_min=_utc_minute(day, start, tz),
            quiet_end_min=_utc_minute(day, end, tz),
        )


def _utc_minute(day: date, local: time, tz: ZoneInfo) -> int:
    moment = datetime.combine(day, local, tzinfo=tz)
    offset = moment.utcoffset() or timedelta(0)
    minutes = local.hour * 60 + local.minute - int(offset.total_seconds()) // 60
    return minutes % 1440
