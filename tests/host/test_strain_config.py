"""StrainConfig: the protocol's keys, defaults and ranges; the same validity rule as the firmware;
SET_CONFIG writes the device accepts one by one, ending in exactly the wanted configuration."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neckline.decode import Rejections, decode_config
from neckline.protocol import CONFIG_DEFAULTS, CONFIG_RANGES, ConfigKey, payload_max
from neckline.strain_config import FIELD_KEYS, StrainConfig, StrainConfigError
from tests.firmware.strain_impls import firmware_proto as fw_proto
from tests.firmware.strain_impls import firmware_strain as fw_strain


def test_defaults_are_the_protocols_on_both_sides() -> None:
    cfg = StrainConfig()
    assert cfg.entries() == CONFIG_DEFAULTS
    assert cfg.values_by_key() == list(fw_proto.CONFIG_DEFAULTS)
    assert list(FIELD_KEYS.values()) == list(ConfigKey)


@pytest.mark.parametrize("name", sorted(FIELD_KEYS))
def test_every_key_is_checked_against_its_range(name: str) -> None:
    low, high = CONFIG_RANGES[FIELD_KEYS[name]]
    for bad in (low - 1, high + 1):
        with pytest.raises(StrainConfigError, match=name):
            _make(name, bad)
    for good in (low, high):
        try:
            _make(name, good)
        except StrainConfigError as err:
            # Only the cross-key rule may refuse an in-range value (e.g. a 1° threshold).
            assert "hysteresis" in str(err)


def _make(name: str, value: Any) -> StrainConfig:
    extra: dict[str, Any] = {}
    if name in ("threshold_cdeg", "lateral_threshold_cdeg", "extension_threshold_cdeg"):
        extra["hysteresis_cdeg"] = 0
    return StrainConfig(**{name: value, **extra})


def test_non_integers_are_refused() -> None:
    with pytest.raises(StrainConfigError, match="integer"):
        StrainConfig(hold_s=True)
    with pytest.raises(StrainConfigError, match="integer"):
        StrainConfig(threshold_cdeg=2500.0)  # type: ignore[arg-type]


def test_hysteresis_must_stay_below_every_threshold() -> None:
    with pytest.raises(StrainConfigError, match="hysteresis"):
        StrainConfig(hysteresis_cdeg=1500)  # extension threshold is -15°
    with pytest.raises(StrainConfigError, match="hysteresis"):
        StrainConfig(lateral_threshold_cdeg=400)  # 5° hysteresis
    StrainConfig(hysteresis_cdeg=1499)


@st.composite
def raw_values(draw: st.DrawFn) -> dict[str, int]:
    out = {}
    for name, key in FIELD_KEYS.items():
        low, high = CONFIG_RANGES[key]
        out[name] = draw(st.integers(low, high))
    return out


@settings(max_examples=300, deadline=None)
@given(raw_values())
def test_host_validation_equals_the_firmwares(values: dict[str, int]) -> None:
    by_key = [0] * 12
    for name, key in FIELD_KEYS.items():
        by_key[key] = values[name]
    firmware_ok = fw_strain.config_ok(by_key) and all(
        fw_proto.config_value_ok(k, by_key[k]) for k in range(1, 12)
    )
    try:
        StrainConfig(**values)
        host_ok = True
    except StrainConfigError:
        host_ok = False
    assert host_ok == firmware_ok


@st.composite
def configs(draw: st.DrawFn) -> StrainConfig:
    values = draw(raw_values())
    limit = min(
        values["threshold_cdeg"], -values["extension_threshold_cdeg"],
        values["lateral_threshold_cdeg"],
    )
    values["hysteresis_cdeg"] = draw(st.integers(0, min(limit - 1, 3000)))
    return StrainConfig(**values)


class FakeDeviceConfig:
    """The device's SET_CONFIG handling: firmware parser, then the firmware's combination rule."""

    def __init__(self, start: StrainConfig) -> None:
        self.values = start.values_by_key()

    def write(self, request: bytes) -> int:
        status, _op, entries = fw_proto.parse_request(request)
        if status != fw_proto.ST_SUCCESS:
            return int(status)
        trial = list(self.values)
        for key, value in entries:
            trial[key] = value
        if not fw_strain.config_ok(trial):
            return int(fw_proto.ST_INVALID_PARAMETER)
        self.values = trial
        return int(fw_proto.ST_SUCCESS)


@settings(max_examples=300, deadline=None)
@given(configs(), configs(), st.sampled_from([23, 27, 50, 185, 517]), st.booleans())
def test_set_config_writes_are_each_accepted_and_reach_the_target(
    device_now: StrainConfig, target: StrainConfig, mtu: int, known: bool
) -> None:
    device = FakeDeviceConfig(device_now)
    writes = target.set_config_writes(mtu, device_now if known else None)
    for w in writes:
        assert len(w) <= payload_max(mtu)
        assert device.write(w) == fw_proto.ST_SUCCESS
    assert device.values == target.values_by_key()


def test_at_the_default_mtu_the_linked_keys_are_ordered_by_the_hysteresis_change() -> None:
    now = StrainConfig(hysteresis_cdeg=200)
    grow = replace(StrainConfig(), hysteresis_cdeg=900)
    shrink = replace(StrainConfig(), hysteresis_cdeg=100)
    assert grow.set_config_writes(23, now)[0][1] == ConfigKey.STRAIN_THRESHOLD_CDEG
    assert shrink.set_config_writes(23, now)[0][1] == ConfigKey.HYSTERESIS_CDEG
    unknown = StrainConfig().set_config_writes(23)
    assert unknown[0] == bytes([0x03, ConfigKey.HYSTERESIS_CDEG, 0, 0, 0, 0])
    # One write when the MTU has room for all four linked keys.
    assert len(StrainConfig().set_config_writes(517)) == 1


def test_a_devices_config_read_round_trips() -> None:
    cfg = StrainConfig(threshold_cdeg=2000, hold_s=30, snooze_s=600, quiet_start_min=1320,
                       quiet_end_min=420)
    buf = bytearray(64)
    n = fw_proto.pack_config(buf, [*sorted(cfg.entries().items()), (42, 7)])
    rejections = Rejections()
    decoded = decode_config(bytes(buf[:n]), rejections)
    assert decoded is not None and rejections.total == 0
    assert StrainConfig.from_device(decoded) == cfg
    assert cfg.differences(decoded) == {}
    other = replace(cfg, hold_s=60)
    assert other.differences(decoded) == {ConfigKey.STRAIN_HOLD_S: (60, 30)}
    assert StrainConfig.from_entries({1: 3000}).threshold_cdeg == 3000
    with pytest.raises(StrainConfigError, match="not a v1 key"):
        StrainConfig.from_entries({12: 1})


def test_local_quiet_hours_become_utc_minutes() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    winter = StrainConfig().with_local_quiet_hours(time(22), time(7), berlin, date(2024, 1, 15))
    assert (winter.quiet_start_min, winter.quiet_end_min) == (21 * 60, 6 * 60)
    summer = StrainConfig().with_local_quiet_hours(time(22), time(7), berlin, date(2024, 7, 15))
    assert summer.quiet_hours == (20 * 60, 5 * 60)
    tokyo = StrainConfig().with_local_quiet_hours(
        time(1, 30), time(8), ZoneInfo("Asia/Tokyo"), date(2024, 7, 15)
    )
    assert tokyo.quiet_hours == (16 * 60 + 30, 23 * 60)  # wraps into the previous UTC day
    off = winter.with_local_quiet_hours(None, time(7), berlin)
    assert off.quiet_hours is None
