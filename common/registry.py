"""Registries: a name → object table per extension point, filled by a decorator."""

from __future__ import annotations

from typing import Callable


def registrar(table: dict, kind: str, set_name: bool = False) -> Callable:
    """`@register("name")` for `table`. A second object under one name is an error, not a silent
    replacement; `set_name` also stores the name on the object (`obj.name`)."""

    def register(name: str):
        def deco(obj):
            if name in table and table[name] is not obj:
                raise ValueError(f"{kind} {name!r} is already registered ({table[name]!r})")
            table[name] = obj
            if set_name:
                obj.name = name
            return obj

        return deco

    return register
