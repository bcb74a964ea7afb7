"""The only layer that composes subsystems (spec → plan → driver); it owns rollback."""
