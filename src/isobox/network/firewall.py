"""isobox's nftables table, rendered whole from the database and swapped in atomically.

The ruleset is data built by a pure function (`render`, golden-tested) and applied with `nft -f -` as one
transaction: `table …; delete table …; table … { … }` replaces the previous version or creates the first
one, so a crash never leaves half a ruleset, and rules of removed workloads cannot linger (nft(8),
"ATOMIC RULE REPLACEMENT"). With no active network the table is deleted: nothing of isobox remains.

Per network (bridge B, subnet S):
- postrouting: `ip saddr S oifname != B masquerade` (outbound NAT); `oifname B ip saddr 127.0.0.0/8
  masquerade` (the host's 127.0.0.1 reaching a published port: see bridge.py, route_localnet);
  `oifname B ip saddr S ct status dnat masquerade` (hairpin: a workload reaching a published port of
  its own network through a host address must see the reply come back from that address).
- forward: replies and traffic inside the network pass, and DNATed (published) traffic enters; anything
  else routed towards the bridge is dropped: networks are isolated from each other and from other hosts.
- raw prerouting: drop packets arriving on B for 127.0.0.0/8 (kube-proxy's fix for CVE-2020-8558, the
  hole route_localnet would open); it runs before conntrack NAT, so replies to the host are unaffected.
Published ports: DNAT in the nat prerouting hook (other hosts, other namespaces) and nat output hook
(the host itself, 127.0.0.1 included) for destinations of type local (`fib daddr type local`), i.e. any
address of this host, or only the given host address. Traffic is never proxied in user space.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from isobox.command import run
from isobox.model.network import PortPlan


@dataclass(frozen=True)
class BridgeRules:
    bridge: str
    subnet: str


@dataclass(frozen=True)
class Ruleset:
    table: str
    bridges: tuple[BridgeRules, ...] = ()
    ports: tuple[PortPlan, ...] = ()


def render(rules: Ruleset) -> str:
    """The `nft -f` script that makes the table exactly `rules` (or removes it when there is nothing)."""
    head = [f"table inet {rules.table}", f"delete table inet {rules.table}"]
    if not rules.bridges:
        return "\n".join(head) + "\n"
    body = [
        *_chain("raw_prerouting", "type filter hook prerouting priority raw; policy accept;", _raw(rules)),
        *_chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;",
                ["meta nfproto ipv4 fib daddr type local jump published"]),
        *_chain("output", "type nat hook output priority -100; policy accept;",
                ["meta nfproto ipv4 fib daddr type local jump published"]),
        *_chain("published", "", [_dnat(port) for port in rules.ports]),
        *_chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", _postrouting(rules)),
        *_chain("forward", "type filter hook forward priority filter; policy accept;", _forward(rules)),
    ]
    return "\n".join([*head, f"table inet {rules.table} {{", *body, "}"]) + "\n"


def _chain(name: str, hook: str, rules: list[str]) -> list[str]:
    lines = [f"\tchain {name} {{"]
    if hook:
        lines.append(f"\t\t{hook}")
    lines += [f"\t\t{rule}" for rule in rules]
    lines.append("\t}")
    return lines


def _raw(rules: Ruleset) -> list[str]:
    return [f'iifname "{b.bridge}" ip daddr 127.0.0.0/8 counter drop comment "localnet {b.bridge}"'
            for b in rules.bridges]


def _dnat(port: PortPlan) -> str:
    match = f"ip daddr {port.host_ip} " if port.host_ip else ""
    proto = port.protocol.value
    return (f"{match}{proto} dport {port.host_port} counter dnat ip to {port.container_ip}:{port.container_port}"
            f' comment "publish {port}"')


def _postrouting(rules: Ruleset) -> list[str]:
    lines = []
    for b in rules.bridges:
        lines += [
            f'ip saddr {b.subnet} oifname != "{b.bridge}" counter masquerade comment "masquerade {b.bridge}"',
            f'oifname "{b.bridge}" ip saddr 127.0.0.0/8 counter masquerade comment "localhost {b.bridge}"',
            f'oifname "{b.bridge}" ip saddr {b.subnet} ct status dnat counter masquerade comment "hairpin {b.bridge}"',
        ]
    return lines


def _forward(rules: Ruleset) -> list[str]:
    lines = []
    for b in rules.bridges:
        lines += [
            f'oifname "{b.bridge}" ct state established,related accept',
            f'oifname "{b.bridge}" iifname "{b.bridge}" accept',
            f'oifname "{b.bridge}" ct status dnat accept',
            f'oifname "{b.bridge}" counter drop comment "isolate {b.bridge}"',
        ]
    return lines


def apply(rules: Ruleset, applied: Path | None = None) -> None:
    """Swap the table in; with `applied` (a file under /run, gone at reboot like the table itself), skip
    the nft call when the script is the one applied last: most workloads change no rule at all."""
    script = render(rules)
    if applied is not None and _read(applied) == script:
        return
    run(["nft", "-f", "-"], input=script, op="apply nftables rules", id=f"inet {rules.table}")
    if applied is not None:
        applied.parent.mkdir(parents=True, exist_ok=True)
        tmp = applied.with_suffix(".tmp")
        tmp.write_text(script)
        os.replace(tmp, applied)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, ValueError):  # missing, or damaged (not UTF-8): the rules are applied again
        return None


def counters(table: str) -> dict[str, int]:
    """Packets per commented rule of the table ({} if it does not exist), e.g. {"masquerade isobox0": 3}."""
    text = run(["nft", "-j", "list", "table", "inet", table], op="list nftables rules", id=table, check=False)
    found: dict[str, int] = {}
    for item in json.loads(text or '{"nftables": []}').get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule.get("expr", []):
            if "counter" in expr:
                found[rule["comment"]] = int(expr["counter"].get("packets", 0))
    return found
