"""Typed, validated parameters: one mechanism for methods, noise models, datasets and strategies.

Every plugin kind declares its parameters as a :class:`Params` model (pydantic v2): names,
types, defaults and bounds in one place. Values from the command line or a sweep file are
checked and type-converted *when a spec is resolved*, never later, and every problem becomes
one line that says which parameter of which plugin, what was expected and what was given::

    class MyParams(Params):
        epochs: int = Field(40, ge=1, description="training epochs")
        lr: float = Field(1e-4, gt=0)
        schedule: Literal["const", "linear"] = "const"

    MyParams.check({"epochs": "3"}, owner="method 'mine'")      # → MyParams(epochs=3, ...)

:func:`parse_key_values` is the one ``key=value`` parser of the command line and sweep files.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from nrchbench.errors import ConfigError

__all__ = ["Params", "params_from_defaults", "parse_key_values"]


class Params(BaseModel):
    """Base of every parameter model: frozen, unknown names refused, defaults validated.

    Subclass it with annotated fields (``pydantic.Field`` for bounds and descriptions).
    ``model_dump()`` gives the plain JSON-able dict that records store.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, coerce_numbers_to_str=True, protected_namespaces=()
    )

    #: Human name of the kind of owner ("method", "noise model", ...) for messages; optional.
    kind: ClassVar[str] = "plugin"

    @classmethod
    def check(cls, values: Mapping[str, Any] | None = None, *, owner: str = "") -> Params:
        """Validate and convert ``values`` (missing names take their defaults).

        Args:
            values: parameter name → value (CLI strings are converted to the declared type).
            owner: who the parameters belong to, for messages (e.g. ``"method 'nrch'"``).

        Raises:
            ConfigError: one line naming the first bad parameter, what was expected and what
                was given (unknown names get the closest accepted names and the full list).
        """
        values = dict(values or {})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_one_line(cls, exc, owner or cls.__name__)) from None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every parameter with its default value (as records store them)."""
        return cls().model_dump()

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.model_fields)

    def replace(self, **changes: Any) -> Params:
        """A validated copy with some values changed."""
        return type(self).check({**self.model_dump(), **changes})


def _one_line(cls: type[BaseModel], exc: ValidationError, owner: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err.get("loc", ())) or "?"
    accepted = list(cls.model_fields)
    if err.get("type") == "extra_forbidden":
        close = difflib.get_close_matches(key, accepted, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"{owner} has no parameter {key!r}{hint}; parameters: {', '.join(sorted(accepted)) or 'none'}"
    msg = str(err.get("msg", "invalid value"))
    msg = msg[0].lower() + msg[1:] if msg else msg
    return f"{owner} parameter {key!r}: {msg}, got {err.get('input')!r}"


def params_from_defaults(name: str, defaults: Mapping[str, Any], base: type[Params] = Params) -> type[Params]:
    """A :class:`Params` model whose fields are typed by the values of a ``defaults`` dict.

    For plugins that declare a plain ``defaults = {...}`` dict: ``int`` defaults make
    integer fields, ``float`` float fields, and so on; a ``None`` default accepts anything.
    """
    fields: dict[str, Any] = {}
    for key, value in defaults.items():
        if value is None:
            fields[key] = (Any, None)
        elif isinstance(value, bool):
            fields[key] = (bool, value)
        elif isinstance(value, int):
            fields[key] = (int, value)
        elif isinstance(value, float):
            fields[key] = (float, value)
        elif isinstance(value, str):
            fields[key] = (str, value)
        elif isinstance(value, (list, tuple)):
            fields[key] = (list, list(value))
        elif isinstance(value, Mapping):
            fields[key] = (dict, dict(value))
        else:
            fields[key] = (Any, value)
    return create_model(name, __base__=base, **fields)


def parse_key_values(items: Iterable[str], what: str = "--param") -> dict[str, Any]:
    """``key=value`` strings → dict; values read as JSON where they parse (``n=600`` → 600,
    ``pairs=[[0,1]]`` → a list), else kept as strings (``schedule=linear``). Types are then
    checked by the owner's :class:`Params` model.

    Raises:
        ConfigError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r}: expected key=value, e.g. {what} epochs=5")
        value = value.strip()
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out
