"""Running tfbot: the `serve` supervisor, workers, liveness and recovery after a crash, reconciliation with
GitHub, preflight checks, logs, metrics and the admin commands."""
