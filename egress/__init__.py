"""The egress proxy: the only way out of a sandbox, for runs whose `sandbox.network` allows it."""
