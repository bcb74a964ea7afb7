"""The isobox command: translation of flags into Python API calls, and output. No other logic."""
