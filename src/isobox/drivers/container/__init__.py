"""The container driver: an OCI bundle run by runc or crun, supervised by conmon."""
