"""The build stage: the deterministic Lambda package of each instance and its desired state, with content hashes."""
