"""The web app (read state, never run pipelines): health, the lock page, run logs, their JSON, sign-in, metrics,
and the app factory; the webhook endpoint itself is `bot.intake.endpoint`."""
