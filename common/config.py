"""Configs as dataclasses, set from YAML files and dotted command-line overrides (OmegaConf).

An unknown key is an error that lists the valid keys at that level, closest first.
"""

from __future__ import annotations

import difflib
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def _check_keys(cls, data: dict, where: str) -> None:
    valid = {f.name: f for f in fields(cls)}
    for key, val in data.items():
        if key not in valid:
            near = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.0)
            raise ConfigError(f"unknown config key {where + key!r}; valid keys at {where or 'top level'!r}: "
                              f"{', '.join(near)}{' …' if len(valid) > 3 else ''} (all: {sorted(valid)})")
        sub = getattr(cls, "__dataclass_fields__")[key]
        default = sub.default_factory() if callable(getattr(sub, "default_factory", None)) else sub.default
        if is_dataclass(default) and isinstance(val, dict):
            _check_keys(type(default), val, f"{where}{key}.")


def build(cls: type[T], yaml_text: str | None = None, overrides: list[str] | None = None) -> T:
    """Instance of dataclass `cls` from defaults ← YAML ← `key.sub=value` overrides (type-checked)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base = OmegaConf.structured(cls)
    layers = []
    for text, what in ((yaml_text, "config file"), (None, "overrides")):
        if what == "config file" and text:
            data = OmegaConf.to_container(OmegaConf.create(text))
        elif what == "overrides" and overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"override {bad[0]!r} is not key=value (e.g. split.horizon_days=7)")
            data = OmegaConf.to_container(OmegaConf.from_dotlist(overrides))
        else:
            continue
        _check_keys(cls, data, "")
        layers.append(OmegaConf.create(data))
    try:
        merged = OmegaConf.merge(base, *layers)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        where = f" for {key!r}" if key else ""
        raise ConfigError(f"bad config value{where}: {str(e).splitlines()[0]}") from None


def to_dict(cfg: Any) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg))
