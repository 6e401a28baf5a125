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


def read_config(path: str | None, source: str = "--config") -> str | None:
    """The text of a YAML config file named on the command line (None when none was given)."""
    if not path:
        return None
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{source} {path} is a folder; give a YAML file (e.g. configs/demo.yaml)")
    if not p.exists():
        raise FileNotFoundError(f"{source} {path} does not exist")
    try:
        return p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source} {path} cannot be read ({type(e).__name__}: {e})") from None


def _parse_yaml(text: str, source: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of config keys (e.g. 'grpo:'), "
                          f"not a {type(data).__name__}")
    return data


def _check_override(cls, key: str) -> None:
    """An override must name a field path through dataclasses; a list (e.g. curriculum.stages) is set whole."""
    here: Any = cls
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        f = {x.name: x for x in fields(here)}.get(part) if is_dataclass(here) else None
        if f is None:
            return  # an unknown key: _check_keys names it with the valid ones
        default = f.default_factory() if callable(getattr(f, "default_factory", None)) else f.default
        if isinstance(default, (list, tuple)):
            raise ConfigError(f"override {key!r}: {'.'.join(parts[:i + 1])} is a list and is set whole, e.g. "
                              f"{'.'.join(parts[:i + 1])}=[{{...}}, {{...}}] (YAML flow syntax, quoted in the shell)")
        here = default if is_dataclass(default) else None


def build(cls: type[T], yaml_text: str | None = None, overrides: list[str] | None = None,
          source: str = "config file") -> T:
    """Instance of dataclass `cls` from defaults ← YAML ← `key.sub=value` overrides (type-checked)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base = OmegaConf.structured(cls)
    layers = []
    for text, what in ((yaml_text, "config file"), (None, "overrides")):
        if what == "config file" and text:
            data = _parse_yaml(text, source)
        elif what == "overrides" and overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"override {bad[0]!r} is not key=value (e.g. split.horizon_days=7)")
            for o in overrides:
                _check_override(cls, o.split("=", 1)[0])
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
    except (TypeError, ValueError) as e:  # omegaconf's plain errors (shapes it cannot merge), a dataclass's own check
        raise ConfigError(f"bad config value: {e}") from None


def to_dict(cfg: Any) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg))
