"""The YAML files a user hands over (study files, trainer configs, baselines): one mapping, or
an error that names the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: Path, label: str, what: str) -> dict[str, Any]:
    """The mapping in `path`; ValueError "<label>: ..." when it cannot be read, is not YAML or is
    not a mapping (of `what`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{label}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{label}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{label}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{label}: expected a mapping of {what}, got {type(data).__name__}")  # noqa: TRY004 - the file is wrong
    return data


def trainer_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A trainer config's fields: the mapping itself, or its `config:` (a `dqn-sweep best` file)."""
    return data["config"] if isinstance(data.get("config"), dict) else data
