"""The ``filters`` query parameter of Docker's list endpoints, in both of its encodings.

Go clients send ``{"label": ["a=b"], "status": ["exited"]}``; docker-py and older clients send
``{"label": {"a=b": true}}``. Both become {name: [values]}. Within one name a value matches if any of
the values does (except labels, which must all match, as dockerd's); across names all must match.
The matching itself is the service layer's (service/filters.py), which the CLI's --filter uses too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from isobox.errors import InvalidArgumentError
from isobox.service.filters import Filters, any_matches, bool_filter, label_matches

__all__ = ["Filters", "any_matches", "bool_filter", "decode", "label_matches"]


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
