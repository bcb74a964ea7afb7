"""REST API over the Python API."""
