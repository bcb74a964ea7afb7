"""The Python API: what `isobox/__init__.py` exposes, one function per CLI operation (the CLI calls the same
service functions, so the two cannot drift apart). Each call opens the state of ``root`` (or ISOBOX_ROOT, or
the system's default) and closes it before returning."""
