"""The lifecycle of a PR's plans and locks, run in workers: route an event to its handler, decide (pure), execute.

`routing` -> `handlers/` -> `decision` (the table) -> `planning` (queue one run per project) -> `runner` (lock,
checkout, workflow steps, plan store) -> `reporting` (the comment, statuses and check runs, `checks`); `handover` gives a released lock
to the next PR in line.
"""
