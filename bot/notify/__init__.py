"""Outbound notifications: what happened (`notices`), who wants it (`notices.receivers_for`), the bodies Slack and
webhook receivers get (`bodies`), queueing them (`emit`) and sending them from a job (`sending`).

A notification never holds up or changes a run, a comment or a lock: the flow only queues a job, and a queueing
failure is logged, not raised.
"""
