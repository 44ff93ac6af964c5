"""Every Redis key tfbot uses, built in one place. Callers never format keys themselves.

Layout (all under the `tfbot:` prefix; RQ keeps its own `rq:` keys):
  tfbot:delivery:<delivery id>                  seen webhook deliveries (string, TTL) for de-duplication
  tfbot:lock:<repo>:<workspace>:<dir>           the workspace lock (string: one JSON object, see bot.state.locks)
  tfbot:locks                                   index of lock keys (set), for listing
  tfbot:lockq:<repo>:<workspace>:<dir>          PRs waiting for that lock (list of JSON entries, FIFO)
  tfbot:fence                                   fencing-token counter (int)
  tfbot:guard:<repo>:<workspace>:<dir>          short run guard: one Terraform run at a time per project
  tfbot:pr:<repo>:<number>                      per-PR record (hash: head sha, comment ids, plans ...)
  tfbot:run:<run id>                            one plan/apply run (hash) ; tfbot:runs  recent run ids (list)
  tfbot:audit                                   audit trail (list, bounded)
  tfbot:redeliver:asked:<guid>                  delivery attempts asked to be redelivered (set, TTL)
  tfbot:redeliver:checked ; tfbot:recovery:due  redelivery high-water mark ; this period's recovery host
  tfbot:modgraph:<format>:<repo>:<sha>          a commit's module graph (string: JSON, TTL), bot.state.module_cache
  tfbot:modcalls:<format>:<kind>:<blob id>      the module sources one Terraform file names (string: JSON, TTL)
  tfbot:checkrun:<command id>:<project id>      a command's check run of one project (hash: id, sent), TTL
  tfbot:checkrun-of:<repo>:<check run id>       what a check run tfbot made is of (string: JSON, TTL)
Repository names and dirs are case-preserving; dir comes last because it may contain ':'.
"""
from __future__ import annotations

PREFIX = "tfbot"


def text(value: bytes | str) -> str:
    """A key or value as Redis answered it: bytes (tfbot's clients never decode), though redis-py types it either."""
    return value.decode() if isinstance(value, bytes) else value


def delivery(delivery_id: str) -> str:
    return f"{PREFIX}:delivery:{delivery_id}"


def project_id(repo: str, dir: str, workspace: str) -> str:
    """The identity of a project's state: used in every per-project key."""
    return f"{repo}:{workspace}:{dir}"


def lock(repo: str, dir: str, workspace: str) -> str:
    return f"{PREFIX}:lock:{project_id(repo, dir, workspace)}"


def lock_prefix(repo: str) -> str:
    """The start of every lock key of `repo`: owner/name holds no ':', so this matches that repo only."""
    return f"{PREFIX}:lock:{repo}:"


def lock_index() -> str:
    return f"{PREFIX}:locks"


def lock_queue(repo: str, dir: str, workspace: str) -> str:
    return f"{PREFIX}:lockq:{project_id(repo, dir, workspace)}"


def fence() -> str:
    return f"{PREFIX}:fence"


def run_guard(repo: str, dir: str, workspace: str) -> str:
    return f"{PREFIX}:guard:{project_id(repo, dir, workspace)}"


def pull(repo: str, number: int) -> str:
    return f"{PREFIX}:pr:{repo}:{number}"


def run(run_id: str) -> str:
    return f"{PREFIX}:run:{run_id}"


def runs() -> str:
    return f"{PREFIX}:runs"


def audit() -> str:
    return f"{PREFIX}:audit"


def worker_heartbeat() -> str:
    return f"{PREFIX}:workers"


def recent_deliveries() -> str:
    """Deliveries a worker has processed, newest first (list, bounded)."""
    return f"{PREFIX}:deliveries"


def installation_token(installation_id: int) -> str:
    """A cached installation token (string, TTL until shortly before GitHub's expiry)."""
    return f"{PREFIX}:token:{installation_id}"


def plan_records(repo: str, pull: int, project_id: str) -> str:
    """The saved plans of one project of one PR (hash: `run:<run id>` -> PlanRecord JSON, `posted` -> the run id
    of the plan shown on the PR, the reviewed one)."""
    return f"{PREFIX}:plans:{repo}:{pull}:{project_id}"


def command(command_id: str) -> str:
    """One command (autoplan, plan, apply, merge) over several projects (hash)."""
    return f"{PREFIX}:cmd:{command_id}"


def command_started(command_id: str) -> str:
    """Project ids of an ordered command whose run was queued or reported (set; bot/lifecycle/ordering.py)."""
    return f"{PREFIX}:cmd:{command_id}:started"


def command_results(command_id: str) -> str:
    """Per-project results of a command (hash: project id -> JSON)."""
    return f"{PREFIX}:cmd:{command_id}:results"


def command_interrupted(command_id: str) -> str:
    """Project ids whose result in command_results is an "interrupted" report a real result may replace (set)."""
    return f"{PREFIX}:cmd:{command_id}:interrupted"


def run_log(run_id: str) -> str:
    """The full output of one run (string)."""
    return f"{PREFIX}:runlog:{run_id}"


def event_fingerprint(fingerprint: str) -> str:
    """An event's content already acted on (string, TTL): replay protection across delivery ids."""
    return f"{PREFIX}:event:{fingerprint}"


def redelivery_asked(guid: str) -> str:
    """Ids of the attempts of delivery `guid` tfbot asked GitHub to redeliver (set, TTL: GitHub's retention)."""
    return f"{PREFIX}:redeliver:asked:{guid}"


def redelivery_checked() -> str:
    """When the newest delivery the last redelivery pass examined was made (string: unix time)."""
    return f"{PREFIX}:redeliver:checked"


def recovery_due() -> str:
    """Held (SET NX EX interval) by the host that runs this period's recovery pass."""
    return f"{PREFIX}:recovery:due"


def merges_scan_due() -> str:
    """Held (SET NX EX) for MERGE_SCAN_SECONDS by the periodic pass that last looked for missed merges."""
    return f"{PREFIX}:reconcile:merges-due"


def merges_watched_since() -> str:
    """Unix time (string, no TTL) of the first reconciliation pass: merges before it are not tfbot's to catch up."""
    return f"{PREFIX}:reconcile:merges-since"


def run_alive(job_id: str) -> str:
    """A running project job's heartbeat (string, short TTL)."""
    return f"{PREFIX}:alive:{job_id}"


def run_stopping(job_id: str) -> str:
    """Why a stopping `tfbot serve` asked this running job's Terraform to stop (string, TTL): its result says so."""
    return f"{PREFIX}:stopping:{job_id}"


def run_reaped(job_id: str) -> str:
    """Marks a run already reported as interrupted by the reaper (string, TTL)."""
    return f"{PREFIX}:reaped:{job_id}"


def module_graph(format: int, repo: str, sha: str) -> str:
    """The module graph of commit `sha` of `repo` (string: JSON, TTL); a commit never changes, so neither does it."""
    return f"{PREFIX}:modgraph:{format}:{repo}:{sha}"


def module_calls(format: int, kind: str, oid: str) -> str:
    """What one Terraform file's `module` blocks call, by the blob id of its text and `kind` (`tf` or `tf.json`)."""
    return f"{PREFIX}:modcalls:{format}:{kind}:{oid}"


def check_run(command_id: str, project_id: str) -> str:
    """The check run one command writes for one project (hash: `id` GitHub's id, `sent` what it last completed)."""
    return f"{PREFIX}:checkrun:{command_id}:{project_id}"


def check_run_of(repo: str, check_run_id: int) -> str:
    """Which command, PR, head and project a check run of `repo` is of (string: JSON), for its Apply button."""
    return f"{PREFIX}:checkrun-of:{repo}:{int(check_run_id)}"
