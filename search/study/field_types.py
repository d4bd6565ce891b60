"""The type of each field of a trainer's config, read from its dataclass annotations, so a value
from the command line (``--set width=0.5``) or a spec (``batch_size: [32, 64]``) is checked
and converted by the field it names: ``amp=off`` stays the text 'off' for a text field,
``weight_decay=5e-4`` becomes a float, ``milestones=[3,6]`` a tuple of ints, and ``width=wide``
is refused naming the field and the type it takes.

Types understood: ``str``, ``int``, ``float``, ``bool``, ``X | None``, ``tuple[X, ...]`` and
``list[X]`` of those; a field of any other type takes any YAML value unchecked.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any

import yaml

__all__ = ["FieldType", "field_types"]

_NONE_WORDS = ("none", "null", "~", "")


@dataclasses.dataclass(frozen=True)
class FieldType:
    """One config field's type: ``kind`` is int, float, bool, str, seq (a tuple or list of
    ``item``) or any; ``optional``: None is a valid value."""

    name: str
    kind: str
    optional: bool = False
    item: FieldType | None = None
    as_tuple: bool = True  # a seq field holds a tuple (else a list)
    default: Any = None  # the field's code default (None: none, or None itself)

    def describe(self) -> str:
        words = {"int": "a whole number (int)", "float": "a number (float)",
                 "bool": "true or false (bool)", "str": "text (str)", "any": "any value"}
        if self.kind == "seq":
            assert self.item is not None
            plural = {"int": "whole numbers (int)", "float": "numbers (float)",
                      "bool": "true/false values (bool)", "str": "texts (str)"}
            text = f"a list of {plural.get(self.item.kind, 'values')}"
        else:
            text = words[self.kind]
        return text + (" or null" if self.optional else "")

    def example(self) -> str:
        """A value of this type, as written after ``--set name=`` or in YAML."""
        default = self.default
        if default is not None and self.fits(default):
            if isinstance(default, bool):
                return "true" if default else "false"
            if isinstance(default, tuple | list):
                return "[" + ",".join(str(v) for v in default) + "]" if default else "[]"
            return str(default)
        return {"int": "1", "float": "0.5", "bool": "true", "str": "text",
                "seq": "[1,2]"}.get(self.kind, "1")

    def fits(self, value: Any) -> bool:
        """Whether ``value`` (as YAML or a spec holds it) is of this type."""
        if value is None:
            return self.optional or self.kind == "any"
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "float":
            return (isinstance(value, int | float) and not isinstance(value, bool)
                    and math.isfinite(value))
        if self.kind == "str":
            return isinstance(value, str)
        if self.kind == "seq":
            assert self.item is not None
            return isinstance(value, list | tuple) and all(self.item.fits(v) for v in value)
        return True

    def from_text(self, text: str) -> Any:
        """``text`` (the VALUE of ``--set KEY=VALUE``) as this type; ValueError if it is not."""
        stripped = text.strip()
        if self.optional and stripped.lower() in _NONE_WORDS:
            return None
        if self.kind == "str":
            return text
        if self.kind == "any":
            return _yaml_or_text(text)
        if self.kind == "seq":
            return self._seq_from_text(stripped)
        return self._scalar(_yaml_or_text(stripped), stripped)

    def _seq_from_text(self, text: str) -> Any:
        assert self.item is not None
        loaded = _yaml_or_text(text)
        if not isinstance(loaded, list):
            loaded = [] if loaded is None else [s.strip() for s in text.strip("[]").split(",")]
        values = [self.item.from_text(v) if isinstance(v, str) else self.item._scalar(v, str(v))
                  for v in loaded]
        return tuple(values) if self.as_tuple else values

    def _scalar(self, loaded: Any, text: str) -> Any:
        if self.kind == "bool":
            if isinstance(loaded, bool):
                return loaded
            raise ValueError(text)
        if self.kind == "str":
            return text
        try:
            number = float(text) if not isinstance(loaded, int | float) else loaded
        except ValueError:
            raise ValueError(text) from None
        if isinstance(number, bool) or not math.isfinite(number):
            raise ValueError(text)
        if self.kind == "int":
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(text)
            return int(number)
        if self.kind == "float":
            return float(number)
        return loaded


def _yaml_or_text(text: str) -> Any:
    """``text`` read as YAML (``[3, 6]``, ``true``); the text itself where it is no YAML value
    (``=``, ``[1,``), so the type check, not the YAML reader, says what is wrong."""
    if not text:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def field_types(config_cls: type) -> dict[str, FieldType]:
    """Every field of the dataclass ``config_cls`` with its type."""
    return dict(_field_types(config_cls))


@functools.cache
def _field_types(config_cls: type) -> tuple[tuple[str, FieldType], ...]:
    try:
        hints = typing.get_type_hints(config_cls)
    except (NameError, TypeError):  # annotations that do not resolve: check nothing
        hints = {}
    out = []
    for f in dataclasses.fields(config_cls):
        default = None if f.default is dataclasses.MISSING else f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        out.append((f.name, _of(f.name, hints.get(f.name, Any), default)))
    return tuple(out)


def _of(name: str, hint: Any, default: Any = None) -> FieldType:
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(arms) < len(typing.get_args(hint))
        if len(arms) != 1:
            return FieldType(name, "any", optional, default=default)
        hint, origin = arms[0], typing.get_origin(arms[0])
    if origin in (tuple, list):
        args = typing.get_args(hint)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return FieldType(name, "any", optional, default=default)
        item = _of(name, args[0] if args else Any)
        return FieldType(name, "seq", optional, item=item, as_tuple=origin is tuple,
                         default=default)
    kind = {int: "int", float: "float", bool: "bool", str: "str"}.get(hint, "any")
    return FieldType(name, kind, optional, default=default)
