"""The only code that talks to the kernel directly (ctypes, ioctl, raw mount)."""
