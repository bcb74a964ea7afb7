"""Pure values and rules: no I/O, no subprocess, no syscalls."""
