"""The ``filters`` query parameter of Docker's list endpoints, in both of its encodings.

Go clients send ``{"label": ["a=b"], "status": ["exited"]}``; docker-py and older clients send
``{"label": {"a=b": true}}``. Both become {name: [values]}. Within one name a value matches if any of
the values does (except labels, which must all match, as dockerd's); across names all must match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from isobox.errors import InvalidArgumentError

Filters = dict[str, list[str]]


def decode(text: str | None, allowed: Iterable[str]) -> Filters:
    """Parse the parameter; an unknown filter name is a 400, as dockerd answers "invalid filter"."""
    if not text:
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"filters is not valid JSON: {exc}", op="decode filters") from exc
    if not isinstance(document, dict):
        raise InvalidArgumentError("filters must be a JSON object", op="decode filters")
    known = set(allowed)
    result: Filters = {}
    for name, values in document.items():
        if name not in known:
            raise InvalidArgumentError(f"invalid filter '{name}'", op="decode filters")
        if isinstance(values, dict):
            chosen = [str(v) for v, on in values.items() if on]
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            chosen = list(values)
        elif isinstance(values, str):
            chosen = [values]
        else:
            raise InvalidArgumentError(f"filter '{name}' must be a list of strings", op="decode filters")
        result[name] = chosen
    return result


def label_matches(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    """Every ``key``, ``key=value`` or ``key!=value`` of ``wanted`` holds for ``labels``."""
    for item in wanted:
        if "!=" in item:
            key, _, value = item.partition("!=")
            if labels.get(key) == value:
                return False
        elif "=" in item:
            key, _, value = item.partition("=")
            if labels.get(key) != value:
                return False
        elif item not in labels:
            return False
    return True


def bool_filter(filters: Filters, name: str) -> bool | None:
    """A true/false filter such as dangling; None when absent."""
    values = filters.get(name)
    if not values:
        return None
    value = values[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidArgumentError(f"invalid value {values[-1]!r} for filter '{name}': use true or false",
                                   op="decode filters")
    return value in ("true", "1")


def any_matches(filters: Filters, name: str, candidates: Iterable[str]) -> bool:
    """No filter of this name, or one of its values equal to one of ``candidates``."""
    values = filters.get(name)
    if not values:
        return True
    present = set(candidates)
    return any(v in present for v in values)
