"""HTTP endpoints: webhook intake, health, and (later) the lock status page."""
