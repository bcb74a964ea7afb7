"""The VM driver: the same image booted under its own kernel in QEMU (KVM or TCG)."""
