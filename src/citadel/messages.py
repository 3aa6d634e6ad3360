"""Message types: commands, queries and events, and the registry that stores events by name.

A message is a frozen, keyword-only ``msgspec.Struct``. Each message type may declare a stable name and a
schema version as class keywords::

    class OrderCreated(Event, name="orders.OrderCreated", version=2):
        order_id: str
        total: int

Without ``name`` a module assigns ``"<module>.<ClassName>"`` when the type is listed in it. The stored name,
not the Python path, identifies a stored event, so classes may move and be renamed freely.

``subject=`` names the field that holds an event's data subject (``subject="user_id"``): stored encrypted,
the event is sealed with that subject's own key, so forgetting the subject makes it unreadable.

When a subject is forgotten (``CommandContext.forget``), the framework appends ``SubjectForgotten`` to the log
of the service that forgot it and of every service that imported events of its module; a module that lists its
own subclass of it among its events gets that appended too, so its projections can drop what they keep of the
subject.

``permission=`` names the permission a command or query needs (default: its stable name; see
``citadel.security.rbac``). ``expose=False`` keeps a contract command or query for other modules only:
modules may send it (in process or over a broker), but the HTTP API does not offer it to clients.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, dataclass_transform

import msgspec

from citadel.errors import ConfigurationError, InvalidMessage, UnknownEventType

__all__ = [
    "Command",
    "Event",
    "EventRegistry",
    "EventType",
    "Message",
    "Query",
    "SubjectForgotten",
    "Upcaster",
    "decode_json",
    "encode_json",
    "message_name",
    "subject_key",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(msgspec.field,))
class MessageMeta(msgspec.StructMeta):
    """Metaclass that accepts ``name=`` and ``version=`` class keywords on message types."""

    def __new__(
        mcls,
        cls_name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        /,
        *,
        name: str | None = None,
        version: int = 1,
        expose: bool = True,
        permission: str | None = None,
        subject: str | None = None,
        **struct_options: Any,
    ) -> MessageMeta:
        if name is not None and not _NAME.fullmatch(name):
            raise ConfigurationError(f"message name {name!r} is not a dotted identifier like 'orders.OrderCreated'")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigurationError(f"{cls_name}: version must be an integer >= 1, got {version!r}")
        # msgspec does not inherit kw_only; every message is keyword-only, as the base promises.
        struct_options.setdefault("kw_only", True)
        cls = super().__new__(mcls, cls_name, bases, namespace, **struct_options)
        # Names are not inherited: a subclass is a different message.
        type.__setattr__(cls, "__message_name__", name)
        type.__setattr__(cls, "__message_version__", version)
        type.__setattr__(cls, "__message_exposed__", expose)
        type.__setattr__(cls, "__message_permission__", permission)
        if subject is not None and subject not in getattr(cls, "__struct_fields__", ()):
            raise ConfigurationError(f"{cls_name}: subject={subject!r} is not one of its fields")
        type.__setattr__(cls, "__message_subject__", subject)
        return cls


class Message(msgspec.Struct, metaclass=MessageMeta, frozen=True, kw_only=True):
    """Base of commands, queries and events: a frozen, keyword-only msgspec struct."""

    __message_name__: ClassVar[str | None]
    __message_version__: ClassVar[int]
    __message_exposed__: ClassVar[bool]
    __message_permission__: ClassVar[str | None]
    __message_subject__: ClassVar[str | None]


class Command(Message, forbid_unknown_fields=True):
    """An intention to change state, named in the imperative (``CreateOrder``). Exactly one handler.

    A field the command does not have is an error, not silently dropped.
    """


class Query(Message, forbid_unknown_fields=True):
    """A request for data that changes nothing (``GetOrder``). Exactly one handler."""


class Event(Message):
    """A fact that happened, named in the past tense (``OrderCreated``). Zero or more handlers."""


class SubjectForgotten(Event, name="citadel.SubjectForgotten"):
    """A data subject was forgotten in this service: its data key ``key_id`` is deleted here, and every event
    sealed with it is unreadable for good. ``module`` is the module whose service forgot it first.

    Subclass it in a module (``class RecipientForgotten(SubjectForgotten, name="mailing.RecipientForgotten")``)
    and list the subclass in the module's events: it is appended alongside, and the module's projections handle it
    like any of their own events. A subclass declares no ``subject=``: it is stored after the key is gone.
    """

    subject: str
    key_id: str
    module: str


M = TypeVar("M", bound=Message)
E = TypeVar("E", bound=Event)


def message_name(message_type: type[Message], default_prefix: str | None = None) -> str:
    """Return the stable name of a message type: its declared ``name``, else ``prefix.ClassName``."""
    declared = message_type.__message_name__
    if declared is not None:
        return declared
    if default_prefix is None:
        return message_type.__qualname__
    return f"{default_prefix}.{message_type.__name__}"


_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def encode_json(value: Any) -> bytes:
    """Encode a message (or any msgspec-encodable value) as compact JSON bytes."""
    return _encoder.encode(value)


def subject_key(subject: object) -> str:
    """The id of the data key that seals what is stored about ``subject`` (shredded to forget it)."""
    return f"subject:{subject}"


def decode_json(data: bytes | str, into: type[M]) -> M:
    """Decode JSON into a message type, strictly.

    Raises:
        InvalidMessage: the JSON is malformed or does not match the type; ``path`` names the field.
    """
    decoder = _decoders.get(into)
    if decoder is None:
        decoder = _decoders[into] = msgspec.json.Decoder(into)
    try:
        return decoder.decode(data)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise _invalid(into, exc) from exc
    except msgspec.DecodeError as exc:
        raise InvalidMessage(f"malformed JSON for {into.__qualname__}: {exc}") from exc


def _invalid(into: type[Any], exc: msgspec.ValidationError) -> InvalidMessage:
    text = str(exc)
    path = None
    marker = " - at `"
    if marker in text:
        text, _, rest = text.partition(marker)
        path = rest.rstrip("`")
    return InvalidMessage(f"invalid {into.__qualname__}: {text}", path=path)


@dataclass(frozen=True, slots=True)
class Upcaster:
    """Turns the raw payload of ``event_type`` stored at ``from_version`` into ``from_version + 1``."""

    event_type: type[Event]
    from_version: int
    upcast: Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(slots=True)
class EventType:
    """What the registry knows of one event type."""

    cls: type[Event]
    name: str
    version: int
    decoder: msgspec.json.Decoder[Any]
    upcasters: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)


class EventRegistry:
    """Maps event classes to stable stored names and versions, and decodes stored payloads.

    Old payloads (a stored version below the class's current one) pass through the registered upcasters,
    one version step at a time, before they are converted into the class.
    """

    def __init__(self, event_types: Iterable[type[Event]] = ()) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_class: dict[type[Event], EventType] = {}
        for cls in event_types:
            self.register(cls)

    def register(self, cls: type[Event], *, name: str | None = None) -> EventType:
        """Register an event class under its declared name (or ``name``); idempotent for the same pair.

        Raises:
            ConfigurationError: the name is taken by another class, or ``cls`` is not an ``Event``.
        """
        if not (isinstance(cls, type) and issubclass(cls, Event)):
            raise ConfigurationError(f"{cls!r} is not an Event subclass")
        if name is not None and not _NAME.fullmatch(name):
            raise ConfigurationError(f"event name {name!r} is not a dotted identifier like 'orders.OrderCreated'")
        name = name or message_name(cls)
        known = self._by_class.get(cls)
        if known is not None:
            if known.name != name:
                raise ConfigurationError(f"{cls.__qualname__} is registered as {known.name!r}, cannot also be {name!r}")
            return known
        other = self._by_name.get(name)
        if other is not None:
            raise ConfigurationError(
                f"event name {name!r} is used by both {other.cls.__qualname__} and {cls.__qualname__}; "
                "give one of them another name=..."
            )
        info = EventType(cls, name, cls.__message_version__, msgspec.json.Decoder(cls))
        self._by_name[name] = info
        self._by_class[cls] = info
        return info

    def add_upcaster(self, upcaster: Upcaster) -> None:
        """Register an upcaster; the event class must be registered and the step must be below its version."""
        info = self.of(upcaster.event_type)
        if not 1 <= upcaster.from_version < info.version:
            raise ConfigurationError(
                f"upcaster for {info.name} from version {upcaster.from_version} is useless: "
                f"the class is at version {info.version}"
            )
        if upcaster.from_version in info.upcasters:
            raise ConfigurationError(f"two upcasters for {info.name} from version {upcaster.from_version}")
        info.upcasters[upcaster.from_version] = upcaster.upcast

    def of(self, cls: type[Event]) -> EventType:
        """Return the registration of an event class.

        Raises:
            UnknownEventType: the class was never registered.
        """
        try:
            return self._by_class[cls]
        except KeyError:
            raise UnknownEventType(cls.__qualname__) from None

    def named(self, name: str) -> EventType:
        """Return the registration for a stored name.

        Raises:
            UnknownEventType: no class is registered under that name.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventType(repr(name)) from None

    def __contains__(self, cls: object) -> bool:
        return cls in self._by_class

    def __iter__(self) -> Any:
        return iter(self._by_name.values())

    @staticmethod
    def key_id(event: Event, info: EventType) -> str:
        """The data key an event is sealed with: its subject's (``subject:<value>``), else its module's."""
        subject = type(event).__message_subject__
        if subject is not None:
            return subject_key(getattr(event, subject))
        return f"module:{info.name.partition('.')[0]}"

    def encode(self, event: Event) -> tuple[str, int, bytes]:
        """Return ``(name, version, payload)`` for storing an event.

        Raises:
            UnknownEventType: the event's class is not registered.
        """
        info = self._by_class.get(type(event))
        if info is None:
            raise UnknownEventType(type(event).__qualname__)
        data = _encoder.encode(event)
        if b"null" in data:
            # msgspec writes inf and nan as null, which would never decode back: refuse to store them.
            try:
                info.decoder.decode(data)
            except msgspec.ValidationError as exc:
                raise InvalidMessage(
                    f"{info.name} cannot be stored faithfully: {exc} (is a float inf or nan?)"
                ) from exc
        return info.name, info.version, data

    def decode(self, name: str, version: int, payload: bytes) -> Event:
        """Decode a stored payload, upcasting it first when it was stored at an older version.

        Raises:
            UnknownEventType: the name is not registered.
            InvalidMessage: the payload is malformed, from a newer version, or lacks an upcaster step.
        """
        info = self.named(name)
        try:
            if version == info.version:
                return info.decoder.decode(payload)  # type: ignore[no-any-return]
            if version > info.version:
                raise InvalidMessage(
                    f"{name} was stored at version {version}, newer than this code's version {info.version}; "
                    "deploy the newer code before reading these events"
                )
            raw = msgspec.json.decode(payload)
            if not isinstance(raw, dict):
                raise InvalidMessage(f"{name} v{version} payload is not a JSON object")
            for step in range(version, info.version):
                upcast = info.upcasters.get(step)
                if upcast is None:
                    raise InvalidMessage(f"{name} stored at version {version} needs an upcaster from version {step}")
                try:
                    raw = upcast(raw)
                except Exception as exc:
                    raise InvalidMessage(f"upcasting {name} from version {step} failed: {exc!r}") from exc
            return msgspec.convert(raw, info.cls)
        except msgspec.ValidationError as exc:
            raise _invalid(info.cls, exc) from exc
        except msgspec.DecodeError as exc:
            raise InvalidMessage(f"malformed stored payload for {name} v{version}: {exc}") from exc
