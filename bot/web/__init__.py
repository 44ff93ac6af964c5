"""HTTP endpoints: webhook intake, health, the lock page, run logs, their JSON, sign-in and metrics."""
