"""A D-Bus object tree served at the message level, the way bluetoothd's gdbus serves it.

Each object is a path with interfaces, each interface a dict of properties already typed as
`Variant`s (so `ManufacturerData` stays `a{qv}` and `RSSI` stays `n`). Exporting emits
ObjectManager.InterfacesAdded, unexporting InterfacesRemoved, and property updates
Properties.PropertiesChanged: the three signals bleak builds its whole picture from. The tree
answers GetManagedObjects, Properties.Get/GetAll/Set and Introspect itself; every other method
call goes to the handler registered for its (path, interface), which may be a coroutine
function, so one slow call (a read waiting for the device) never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from neckline.vble.errors import BluezError

log = logging.getLogger(__name__)

OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"

Reply = Message | None
MethodHandler = Callable[[Message], Reply | Awaitable[Reply]]
Setter = Callable[[str, Variant], None]

_UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
_UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
_PROPERTY_READ_ONLY = "org.freedesktop.DBus.Error.PropertyReadOnly"
_INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"


class ObjectTree:
    """The objects of one bus connection; see the module docstring."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self._objects: dict[str, dict[str, dict[str, Variant]]] = {}
        self._handlers: dict[tuple[str, str], MethodHandler] = {}
        self._setters: dict[tuple[str, str], Setter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        bus.add_message_handler(self._on_message)

    # -- objects ---------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return path in self._objects

    def export(
        self,
        path: str,
        interfaces: dict[str, dict[str, Variant]],
        handlers: dict[str, MethodHandler] | None = None,
        setters: dict[str, Setter] | None = None,
    ) -> None:
        """Publish `path` with `interfaces` (emits InterfacesAdded)."""
        if path in self._objects:
            raise ValueError(f"{path} is already exported")
        self._objects[path] = {name: dict(props) for name, props in interfaces.items()}
        for iface, handler in (handlers or {}).items():
            self._handlers[(path, iface)] = handler
        for iface, setter in (setters or {}).items():
            self._setters[(path, iface)] = setter
        self._signal("/", OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}",
                     [path, self._objects[path]])

    def unexport(self, path: str) -> None:
        """Withdraw `path` (emits InterfacesRemoved); a path not exported is ignored."""
        interfaces = self._objects.pop(path, None)
        if interfaces is None:
            return
        for iface in interfaces:
            self._handlers.pop((path, iface), None)
            self._setters.pop((path, iface), None)
        self._signal("/", OBJECT_MANAGER, "InterfacesRemoved", "oas", [path, list(interfaces)])

    def get(self, path: str, iface: str, name: str) -> Any:
        """The plain value of a property, or None if absent."""
        variant = self._objects.get(path, {}).get(iface, {}).get(name)
        return None if variant is None else variant.value

    def update(
        self,
        path: str,
        iface: str,
        changed: dict[str, Variant],
        invalidated: list[str] | tuple[str, ...] = (),
        *,
        force: bool = False,
    ) -> None:
        """Change properties and emit PropertiesChanged for those that really changed.

        `force` emits even unchanged values, as bluetoothd does for notifications (a repeated
        value is still a new notification) and for RSSI updates during discovery.
        """
        props = self._objects.get(path, {}).get(iface)
        if props is None:
            return
        emit: dict[str, Variant] = {}
        for name, value in changed.items():
            old = props.get(name)
            if force or old is None or old.signature != value.signature or old.value != value.value:
                emit[name] = value
            props[name] = value
        gone = [name for name in invalidated if props.pop(name, None) is not None]
        if emit or gone:
            self._signal(path, PROPERTIES, "PropertiesChanged", "sa{sv}as", [iface, emit, gone])

    def children(self, prefix: str) -> list[str]:
        """Exported paths strictly below `prefix`, deepest first (the order to unexport them)."""
        below = [p for p in self._objects if p.startswith(prefix + "/")]
        return sorted(below, key=lambda p: p.count("/"), reverse=True)

    # -- signals and replies ---------------------------------------------------------------

    def _signal(self, path: str, iface: str, member: str, signature: str, body: list[Any]) -> None:
        self.bus.send(Message.new_signal(path, iface, member, signature, body))

    def reply(self, msg: Message, reply: Message) -> asyncio.Future[Any] | None:
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            return None
        return self.bus.send(reply)

    # -- dispatch --------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> bool:
        if msg.message_type != MessageType.METHOD_CALL:
            return False
        path = msg.path or ""
        iface = msg.interface or ""
        log.debug("call %s.%s on %s from %s", iface, msg.member, path, msg.sender)
        try:
            builtin = self._builtin(msg, path, iface)
            if builtin is not None:
                self.reply(msg, builtin)
                return True
            handler = self._handlers.get((path, iface))
            if handler is None:
                self.reply(msg, self._unknown(msg, path, iface))
                return True
            result = handler(msg)
        except BluezError as exc:
            self.reply(msg, Message.new_error(msg, exc.name, exc.text))
            return True
        if isinstance(result, Message):
            self.reply(msg, result)
        elif result is not None:
            task = asyncio.ensure_future(self._finish(msg, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    async def _finish(self, msg: Message, pending: Awaitable[Reply]) -> None:
        try:
            reply = await pending
        except BluezError as exc:
            reply = Message.new_error(msg, exc.name, exc.text)
        except Exception as exc:
            log.exception("%s.%s on %s failed", msg.interface, msg.member, msg.path)
            reply = Message.new_error(msg, "org.bluez.Error.Failed", f"internal error: {exc}")
        if reply is not None:
            self.reply(msg, reply)

    def _unknown(self, msg: Message, path: str, iface: str) -> Message:
        text = (f'Method "{msg.member}" with signature "{msg.signature}" on interface '
                f'"{iface}" doesn\'t exist')
        if path not in self._objects:
            return Message.new_error(msg, _UNKNOWN_OBJECT, text)
        return Message.new_error(msg, _UNKNOWN_METHOD, text)

    def _builtin(self, msg: Message, path: str, iface: str) -> Message | None:
        member = msg.member
        if iface == OBJECT_MANAGER and member == "GetManagedObjects":
            if path != "/":
                return None
            return Message.new_method_return(msg, "a{oa{sa{sv}}}", [self._objects])
        if iface == INTROSPECTABLE and member == "Introspect":
            return Message.new_method_return(msg, "s", [self._introspect(path)])
        if iface == PEER and member == "Ping":
            return Message.new_method_return(msg)
        if iface != PROPERTIES:
            return None
        obj = self._objects.get(path)
        if obj is None:
            return Message.new_error(msg, _UNKNOWN_OBJECT, f"no object at {path}")
        if member == "GetAll":
            props = obj.get(msg.body[0])
            if props is None:
                return Message.new_error(msg, _INVALID_ARGS, f"no interface {msg.body[0]}")
            return Message.new_method_return(msg, "a{sv}", [props])
        if member == "Get":
            value = obj.get(msg.body[0], {}).get(msg.body[1])
            if value is None:
                return Message.new_error(msg, _UNKNOWN_PROPERTY,
                                         f"no property {msg.body[0]}.{msg.body[1]}")
            return Message.new_method_return(msg, "v", [value])
        if member == "Set":
            target, name, value = msg.body
            setter = self._setters.get((path, target))
            if target not in obj or name not in obj[target]:
                return Message.new_error(msg, _UNKNOWN_PROPERTY, f"no property {target}.{name}")
            if setter is None:
                return Message.new_error(msg, _PROPERTY_READ_ONLY, f"{name} is read-only")
            setter(name, value)
            return Message.new_method_return(msg)
        return None

    def _introspect(self, path: str) -> str:
        prefix = "" if path == "/" else path
        kids = sorted({p[len(prefix) + 1 :].split("/")[0] for p in self._objects
                       if p.startswith(prefix + "/")})
        ifaces = "".join(f'<interface name="{i}"/>' for i in self._objects.get(path, {}))
        nodes = "".join(f'<node name="{k}"/>' for k in kids)
        return f"<node>{ifaces}{nodes}</node>"
