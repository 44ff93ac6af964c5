"""Intake: a webhook becomes a queued job in milliseconds (signature, payload checks, replay fingerprint, enqueue).

Nothing here runs Terraform, talks to GitHub or decides about locks; the lifecycle does that in a worker.
"""
