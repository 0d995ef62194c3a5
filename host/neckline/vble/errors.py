"""The D-Bus errors the virtual BlueZ replies with, named and worded as bluetoothd words them.

Sources (BlueZ master): `src/error.c` (the `btd_error_*` helpers and `btd_error_le_str`),
`src/device.c` (`new_authentication_return`) and `src/gatt-client.c`
(`create_gatt_dbus_error`, which turns an ATT error code into a D-Bus error). docs/vble.md has
the table and what bleak raises for each.
"""

from __future__ import annotations

# ATT error codes (Core Spec Vol 3 Part F 3.4.1.1) that BlueZ maps specially.
ATT_INVALID_HANDLE = 0x01
ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_INSUFFICIENT_AUTHENTICATION = 0x05
ATT_REQUEST_NOT_SUPPORTED = 0x06
ATT_INVALID_OFFSET = 0x07
ATT_INSUFFICIENT_AUTHORIZATION = 0x08
ATT_INSUFFICIENT_ENCRYPTION_KEY_SIZE = 0x0C
ATT_INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D
ATT_UNLIKELY_ERROR = 0x0E
ATT_INSUFFICIENT_ENCRYPTION = 0x0F

PREFIX = "org.bluez.Error."

LE_ABORT_BY_LOCAL = "le-connection-abort-by-local"


class BluezError(Exception):
    """A D-Bus error reply: `name` is the full error name, `text` its single string argument."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text


def failed(text: str) -> BluezError:
    return BluezError(PREFIX + "Failed", text)


def in_progress() -> BluezError:
    return BluezError(PREFIX + "InProgress", "In Progress")


def busy() -> BluezError:
    """btd_error_busy: also named InProgress, with another text."""
    return BluezError(PREFIX + "InProgress", "Operation already in progress")


def not_permitted(text: str) -> BluezError:
    return BluezError(PREFIX + "NotPermitted", text)


def not_supported() -> BluezError:
    return BluezError(PREFIX + "NotSupported", "Operation is not supported")


def not_authorized() -> BluezError:
    return BluezError(PREFIX + "NotAuthorized", "Operation Not Authorized")


def not_connected() -> BluezError:
    return BluezError(PREFIX + "NotConnected", "Not Connected")


def does_not_exist() -> BluezError:
    return BluezError(PREFIX + "DoesNotExist", "Does Not Exist")


def already_exists() -> BluezError:
    return BluezError(PREFIX + "AlreadyExists", "Already Exists")


def invalid_args(text: str = "Invalid arguments in method call") -> BluezError:
    return BluezError(PREFIX + "InvalidArguments", text)


def not_ready() -> BluezError:
    return BluezError(PREFIX + "NotReady", "Resource Not Ready")


def authentication_failed() -> BluezError:
    return BluezError(PREFIX + "AuthenticationFailed", "Authentication Failed")


def le_connection_failed(reason: str = LE_ABORT_BY_LOCAL) -> BluezError:
    """btd_error_le_errno: a failed LE connection is `Failed` with a reason string."""
    return failed(reason)


def gatt_error(att_ecode: int) -> BluezError:
    """What bluetoothd replies when a GATT request fails with `att_ecode` (0 = no ATT code)."""
    if att_ecode == ATT_READ_NOT_PERMITTED:
        return not_permitted("Read not permitted")
    if att_ecode == ATT_WRITE_NOT_PERMITTED:
        return not_permitted("Write not permitted")
    if att_ecode in (
        ATT_INSUFFICIENT_AUTHENTICATION,
        ATT_INSUFFICIENT_ENCRYPTION,
        ATT_INSUFFICIENT_ENCRYPTION_KEY_SIZE,
    ):
        return not_permitted("Not paired")
    if att_ecode == ATT_INVALID_OFFSET:
        return invalid_args("Invalid offset")
    if att_ecode == ATT_INVALID_ATTRIBUTE_VALUE_LENGTH:
        return invalid_args("Invalid Length")
    if att_ecode == ATT_INSUFFICIENT_AUTHORIZATION:
        return not_authorized()
    if att_ecode == ATT_REQUEST_NOT_SUPPORTED:
        return not_supported()
    if att_ecode == 0:
        return failed("Operation failed")
    return failed(f"Operation failed with ATT error: 0x{att_ecode:02x}")
