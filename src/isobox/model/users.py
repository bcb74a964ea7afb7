"""Resolve a `--user` value against an image's /etc/passwd and /etc/group, by Docker's rules (those of
runc's and moby's user lookup), for containers and VMs alike.

- '' means root; 'name', 'uid', 'uid:gid', 'name:group', 'uid:group' …
- A numeric uid without a passwd entry is allowed (gid 0, home /); a name must have an entry.
- With the group left implicit, the user's supplementary groups are the groups of /etc/group that list
  the user's name; with an explicit group there are none (only that group).
"""

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


def _matches(row: list[str], wanted: str) -> bool:
    return row[0] == wanted or (wanted.isdigit() and row[2] == wanted)


def resolve_user(user: str, passwd: str | None, group: str | None) -> ResolvedUser:
    name, _, grp = (user or "0").partition(":")
    groups = _rows(group)
    entry = next((r for r in _rows(passwd) if len(r) >= 4 and _matches(r, name)), None)
    if entry is not None:
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5] if len(entry) > 5 else "/"
    elif name.isdigit():
        uid, gid, home = int(name), 0, "/"
    else:
        raise InvalidArgumentError(f"unable to find user {name}: no matching entry in passwd file", op="resolve user")
    if grp:
        row = next((r for r in groups if len(r) >= 3 and _matches(r, grp)), None)
        if row is not None:
            gid = int(row[2])
        elif grp.isdigit():
            gid = int(grp)
        else:
            raise InvalidArgumentError(
                f"unable to find group {grp}: no matching entry in group file", op="resolve user"
            )
        return ResolvedUser(uid=uid, gid=gid, home=home or "/")
    member = entry[0] if entry else None
    extra = sorted(
        {int(r[2]) for r in groups if len(r) >= 4 and member and member in r[3].split(",") and r[2].isdigit()}
    )
    return ResolvedUser(uid=uid, gid=gid, additional_gids=tuple(extra), home=home or "/")
