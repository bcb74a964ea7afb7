"""Resolve a `--user` value against an image's /etc/passwd and /etc/group (Docker's rules)."""

from __future__ import annotations

from dataclasses import dataclass

from isobox.errors import InvalidArgumentError


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _rows(text: str | None) -> list[list[str]]:
    if not text:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(user: str, passwd: str | None, group: str | None) -> ResolvedUser:
    """'' → root; 'name' / 'uid' / 'uid:gid' / 'name:group'. Numeric ids need no passwd entry."""
    if not user:
        user = "0"
    name, _, grp = user.partition(":")
    users = _rows(passwd)
    groups = _rows(group)
    entry = next((r for r in users if len(r) >= 4 and (r[0] == name or (name.isdigit() and r[2] == name))), None)
    if entry is not None:
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5] if len(entry) > 5 else "/"
    elif name.isdigit():
        uid, gid, home = int(name), 0, "/"  # Docker: a numeric uid without passwd entry gets gid 0
    else:
        raise InvalidArgumentError(f"user {name!r} is not in the image's /etc/passwd", op="resolve user")
    if grp:
        row = next((r for r in groups if len(r) >= 3 and (r[0] == grp or (grp.isdigit() and r[2] == grp))), None)
        if row is not None:
            gid = int(row[2])
        elif grp.isdigit():
            gid = int(grp)
        else:
            raise InvalidArgumentError(f"group {grp!r} is not in the image's /etc/group", op="resolve user")
    member_name = entry[0] if entry else None
    extra = tuple(
        sorted(
            {
                int(r[2])
                for r in groups
                if len(r) >= 4 and member_name and member_name in r[3].split(",") and int(r[2]) != gid
            }
        )
    )
    return ResolvedUser(uid=uid, gid=gid, additional_gids=extra, home=home or "/")
