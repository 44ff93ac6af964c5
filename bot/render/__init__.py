"""What a PR reads: comment text from values (pure), one Jinja template per outcome under `templates/`."""
