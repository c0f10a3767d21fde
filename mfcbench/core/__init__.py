"""Layer 0, the base every other layer may use: name registries, declared options, atomic file writes,
restriction operators and work-unit accounting. Imports no other mfcbench layer."""
