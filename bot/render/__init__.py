"""What a PR reads: comment text from values (pure), one Jinja template per outcome under `templates/`; what a
project's check run shows (`checks`, pure)."""
