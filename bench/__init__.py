"""tfbot's benchmarks: `python -m bench` (from the repository root) prints a table and writes bench/results.json.

Every figure is measured against a baseline taken in the same run where one exists (raw Terraform, bare
Redis), because shared machines make absolute times move from run to run. Targets come from issue 7 and are
reported, never asserted. `--quick` shrinks every case so CI can run them all in well under a minute.
"""
