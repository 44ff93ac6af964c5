"""tfbot's state in Redis, its one store: key names, workspace locks and the waiting line, run and command
records, the check runs tfbot made, the audit trail. Every read and write of tfbot's keys goes through these modules."""
