"""isobox benchmarks: side-by-side with peer tools, ratios in one run (see bench/README.md)."""
