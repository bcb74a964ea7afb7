"""Virtual networks shared by containers and VMs (bridges, veth/TAP, nftables, DNS)."""
