"""Every side effect outside Redis state: GitHub's API, the Terraform and git subprocesses, plan files on disk or
S3, secrets from SSM, the embedded Redis server and process control. Adapters import nothing of the flow."""
