"""Two backends behind one Driver interface: containers (OCI runtime) and VMs (QEMU)."""
