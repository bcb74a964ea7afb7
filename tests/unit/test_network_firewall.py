"""The nftables ruleset isobox renders (golden), and the dnsmasq and `ip` commands it builds (pure, no root)."""

from __future__ import annotations

from pathlib import Path

from isobox.model.network import InterfacePlan, NetworkRecord, PortPlan, Protocol
from isobox.network import attach, dns, firewall

RULES = firewall.Ruleset(
    table="isobox",
    bridges=(firewall.BridgeRules("isobox0", "10.88.0.0/24"), firewall.BridgeRules("ibr-0123456789", "10.88.1.0/24")),
    ports=(PortPlan(8080, 80, "10.88.0.2"), PortPlan(5353, 53, "10.88.1.7", "127.0.0.1", Protocol.UDP)),
)

GOLDEN = """\
table inet isobox
delete table inet isobox
table inet isobox {
\tchain raw_prerouting {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tiifname "isobox0" ip daddr 127.0.0.0/8 counter drop comment "localnet isobox0"
\t\tiifname "ibr-0123456789" ip daddr 127.0.0.0/8 counter drop comment "localnet ibr-0123456789"
\t}
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tmeta nfproto ipv4 fib daddr type local jump published
\t}
\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tmeta nfproto ipv4 fib daddr type local jump published
\t}
\tchain published {
\t\ttcp dport 8080 counter dnat ip to 10.88.0.2:80 comment "publish 0.0.0.0:8080->80/tcp"
\t\tip daddr 127.0.0.1 udp dport 5353 counter dnat ip to 10.88.1.7:53 comment "publish 127.0.0.1:5353->53/udp"
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 10.88.0.0/24 oifname != "isobox0" counter masquerade comment "masquerade isobox0"
\t\toifname "isobox0" ip saddr 127.0.0.0/8 counter masquerade comment "localhost isobox0"
\t\toifname "isobox0" ip saddr 10.88.0.0/24 ct status dnat counter masquerade comment "hairpin isobox0"
\t\tip saddr 10.88.1.0/24 oifname != "ibr-0123456789" counter masquerade comment "masquerade ibr-0123456789"
\t\toifname "ibr-0123456789" ip saddr 127.0.0.0/8 counter masquerade comment "localhost ibr-0123456789"
\t\toifname "ibr-0123456789" ip saddr 10.88.1.0/24 ct status dnat counter masquerade comment "hairpin ibr-0123456789"
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\toifname "isobox0" ct state established,related accept
\t\toifname "isobox0" iifname "isobox0" accept
\t\toifname "isobox0" ct status dnat accept
\t\toifname "isobox0" counter drop comment "isolate isobox0"
\t\toifname "ibr-0123456789" ct state established,related accept
\t\toifname "ibr-0123456789" iifname "ibr-0123456789" accept
\t\toifname "ibr-0123456789" ct status dnat accept
\t\toifname "ibr-0123456789" counter drop comment "isolate ibr-0123456789"
\t}
}
"""


def test_ruleset_golden() -> None:
    assert firewall.render(RULES) == GOLDEN


def test_empty_ruleset_deletes_the_table() -> None:
    # `table` first: deleting a table that does not exist would fail the whole transaction (nft(8)).
    assert firewall.render(firewall.Ruleset("isobox-abc")) == "table inet isobox-abc\ndelete table inet isobox-abc\n"


NETWORK = NetworkRecord(id="ab" * 32, name="isobox", subnet="10.88.0.0/24", gateway="10.88.0.1", bridge="isobox0")


def test_dnsmasq_argv_golden() -> None:
    directory = Path("/run/isobox-dns/abab")
    assert dns.dnsmasq_argv(NETWORK, directory) == [
        "dnsmasq",
        "--conf-file=/dev/null",
        "--pid-file=/run/isobox-dns/abab/dnsmasq.pid",
        "--user=nobody",
        "--group=nogroup",
        "--interface=isobox0",
        "--except-interface=lo",
        "--bind-interfaces",
        "--no-hosts",
        "--addn-hosts=/run/isobox-dns/abab/hosts",
        "--domain=isobox.isobox.internal",
        "--expand-hosts",
        "--local=/isobox.internal/",
        "--servers-file=/run/isobox-dns/abab/servers",
        "--domain-needed",
        "--bogus-priv",
        "--local-ttl=0",
        "--dhcp-range=10.88.0.0,static,255.255.255.0,1h",
        "--dhcp-hostsfile=/run/isobox-dns/abab/dhcp-hosts",
        "--dhcp-leasefile=/run/isobox-dns/abab/leases",
        "--dhcp-option=option:router,10.88.0.1",
        "--dhcp-option=option:dns-server,10.88.0.1",
        "--dhcp-authoritative",
        "--log-facility=/run/isobox-dns/abab/dnsmasq.log",
    ]
    assert dns.state_dir(NETWORK) == Path("/run/isobox-dns/abababababababab")


def test_hosts_and_dhcp_files() -> None:
    entries = [
        dns.HostEntry("10.88.0.10", ("db", "database", "0123456789ab")),
        dns.HostEntry("10.88.0.9", ("vm1", "fedcba987654"), mac="02:1b:0a:58:00:09"),
    ]
    assert dns.hosts_text(entries) == "10.88.0.9\tvm1 fedcba987654\n10.88.0.10\tdb database 0123456789ab\n"
    assert dns.dhcp_hosts_text(entries) == "02:1b:0a:58:00:09,10.88.0.9,vm1\n"
    forwards = [("red.isobox.internal", "10.250.1.1"), ("blue.isobox.internal", "10.250.2.1")]
    assert dns.servers_text(forwards) == (
        "server=/blue.isobox.internal/10.250.2.1\nserver=/red.isobox.internal/10.250.1.1\n"
    )


def test_container_interface_commands() -> None:
    eth0 = InterfacePlan("isobox", "n", "isobox0", "iv1", "eth0", "02:1b:0a:58:00:02", "10.88.0.2", 24, "10.88.0.1")
    assert attach.inner_commands(eth0, default_route=True) == [
        "link set lo up",
        "address add 10.88.0.2/24 dev eth0",
        "link set eth0 up",
        "route add default via 10.88.0.1 dev eth0",
    ]
    assert "route" not in " ".join(attach.inner_commands(eth0, default_route=False))
