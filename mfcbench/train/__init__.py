"""Training one cell: its resolved config, the runner (the training loop), checkpoints and provenance."""
