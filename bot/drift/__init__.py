"""Drift detection: each due project is planned on the default branch's head, and what differs from the
infrastructure is kept in one GitHub issue per project, updated while it lasts and closed when it is gone."""
