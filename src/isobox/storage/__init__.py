"""Storage: layer snapshots as mounts (returned as data), volumes and virtual disks."""
