"""Routes: a method and a path pattern per handler, API versions in the path, Docker's answers for the rest.

Paths come versioned (``/v1.44/containers/json``) or not (``/containers/json``: the newest version). The
server announces API 1.44 and serves clients down to 1.24, as dockerd does with its version middleware:
a version outside that range is refused with 400 and dockerd's own message, which the docker CLI shows.
Patterns are Docker's: ``{id}`` is one path segment, ``{name:.*}`` may span several (image names hold
slashes), and the first matching route wins, so ``/images/json`` is listed before ``/images/{name:.*}/json``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from isobox.api.errors import ApiError
from isobox.api.messages import Answer, Request
from isobox.errors import NotFoundError

API_VERSION = (1, 44)
MIN_API_VERSION = (1, 24)

Handler = Callable[[Any, Request], Awaitable[Answer]]

_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_PARAM = re.compile(r"\{(\w+)(?::([^}]*))?\}")


def text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def split_version(path: str) -> tuple[tuple[int, int] | None, str]:
    """('/v1.44/containers/json') → ((1, 44), '/containers/json'); unversioned paths → (None, path)."""
    match = _VERSIONED.match(path)
    if match is None:
        return None, path
    return (int(match.group(1)), int(match.group(2))), match.group(3)


def check_version(version: tuple[int, int] | None) -> tuple[int, int]:
    """The version a request is served at; a 400 with dockerd's message outside [1.24, 1.44]."""
    if version is None:
        return API_VERSION
    if version < MIN_API_VERSION:
        raise ApiError(400, f"client version {text(version)} is too old. Minimum supported API version is "
                            f"{text(MIN_API_VERSION)}, please upgrade your client to a newer version")
    if version > API_VERSION:
        raise ApiError(400, f"client version {text(version)} is too new. Maximum supported API version is "
                            f"{text(API_VERSION)}")
    return version


def compile_pattern(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for match in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[position:match.start()]))
        parts.append(f"(?P<{match.group(1)}>.+)" if match.group(2) == ".*" else f"(?P<{match.group(1)}>[^/]+)")
        position = match.end()
    parts.append(re.escape(pattern[position:]))
    return re.compile("^" + "".join(parts) + "$")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    name: str  # the operation, as error messages and the debug log name it
    handler: Handler
    regex: re.Pattern[str]
    missing: str = ""  # Docker's message when the resource the path names does not exist ("No such container: {id}")

    def not_found_message(self, exc: Exception, params: dict[str, str]) -> str | None:
        """Docker's own words for a 404 about this path's resource (clients match on them)."""
        if self.missing and isinstance(exc, NotFoundError) and (not exc.id or exc.id in params.values()):
            return self.missing.format(**params)
        return None


class RouteTable:
    """A module's routes, declared with decorators next to their handlers."""

    def __init__(self, missing: str = "") -> None:
        self.routes: list[Route] = []
        self.missing = missing

    def add(self, method: str, pattern: str, name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, name, handler, compile_pattern(pattern), self.missing))
            return handler

        return register

    def get(self, pattern: str, name: str) -> Callable[[Handler], Handler]:
        return self.add("GET", pattern, name)

    def post(self, pattern: str, name: str) -> Callable[[Handler], Handler]:
        return self.add("POST", pattern, name)

    def delete(self, pattern: str, name: str) -> Callable[[Handler], Handler]:
        return self.add("DELETE", pattern, name)

    def head(self, pattern: str, name: str) -> Callable[[Handler], Handler]:
        return self.add("HEAD", pattern, name)

    def put(self, pattern: str, name: str) -> Callable[[Handler], Handler]:
        return self.add("PUT", pattern, name)


class Router:
    def __init__(self, *tables: RouteTable) -> None:
        self.routes = [route for table in tables for route in table.routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``path`` (already without its version prefix) and its parameters. An unknown path
        is dockerd's 404 "page not found"; a known path with another method is a 405."""
        allowed: list[str] = []
        for route in self.routes:
            found = route.regex.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed.append(route.method)
        if allowed:
            methods = ", ".join(sorted(set(allowed)))
            raise ApiError(405, f"method {method} is not allowed on {path} (allowed: {methods})")
        raise ApiError(404, "page not found")
