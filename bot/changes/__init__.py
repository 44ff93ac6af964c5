"""Change records: CloudTrail events read from SQS become GitHub issues that say who changed what, when and where."""
