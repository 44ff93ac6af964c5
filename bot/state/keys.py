"""Every Redis key tfbot uses, built in one place. Callers never format keys themselves.

Layout (all under the `tfbot:` prefix; RQ keeps its own `rq:` keys):
  tfbot:delivery:<delivery id>                  seen webhook deliveries (string, TTL) for de-duplication
  tfbot:lock:<repo>:<workspace>:<dir>           the workspace lock (string: one JSON object, see bot.state.locks)
  tfbot:locks                                   index of lock keys (set), for listing
  tfbot:lockq:<repo>:<workspace>:<dir>          PRs waiting for that lock (list of JSON entries, FIFO)
  tfbot:locks:version ; tfbot:locks:changed     lock change counter (int) ; its log, "<version> <lock key>" (list,
                                                capped): what bot.state.lock_cache reads to stay current
  tfbot:fence                                   fencing-token counter (int)
  tfbot:guard:<repo>:<workspace>:<dir>          short run guard: one Terraform run at a time per project
  tfbot:pr:<repo>:<number>                      per-PR record (hash: head sha, comment ids, plans ...)
  tfbot:run:<run id>                            one plan/apply run (hash) ; tfbot:runs  recent run ids (list)
  tfbot:audit                                   audit trail (list, bounded)
  tfbot:redeliver:asked:<guid>                  delivery attempts asked to be redelivered (set, TTL)
  tfbot:redeliver:checked ; tfbot:recovery:due  redelivery high-water mark ; this period's recovery host
  tfbot:modgraph:<format>:<repo>:<sha>          a commit's module graph (string: JSON, TTL), bot.state.module_cache
  tfbot:modcalls:<format>:<kind>:<blob id>      the module sources one Terraform file names (string: JSON, TTL)
  tfbot:notified:<receiver>:<event>:<key>       a once-only notification already queued for a receiver (string, TTL)
  tfbot:notify:counts                           notifications sent and failed (hash: kind|event|result -> count)
  tfbot:changes:...                             change records, bot.state.change_records: groups, their locks
                                                and calls, seen event ids, message counts, pollers, the state index
  tfbot:checkrun:<command id>:<project id>      a command's check run of one project (hash: id, sent), TTL
  tfbot:checkrun-of:<repo>:<check run id>       what a check run tfbot made is of (string: JSON, TTL)
  tfbot:github:health                           the last call to GitHub as the App: ok or why not (string: JSON)
  tfbot:drift:last ; tfbot:drift:issues         each project's last drift check (hash: project id -> JSON) ; its
                                                open drift issue (hash: project id -> number), bot.state.drift_checks
  tfbot:drift:scheduler                         the one drift scheduler among the hosts (string: owner token, PX lease)
  tfbot:drift:slots                             each repository's last drift slot handled (hash: repo -> unix seconds)
  tfbot:drift:due:<slot>:<project id>           a project's check of one slot was queued (string, TTL), SET NX
  tfbot:drift:projects:<repo>:<config>:<sha>    a default branch head's projects under one repos[] entry (JSON, TTL)
  tfbot:signin:<session id>                     a signed-in session of the lock page: who, how (GitHub or admin) and
                                                a GitHub sign-in's roles per repository (string: JSON, TTL: the
                                                session's), bot.state.sign_ins; no key means signed out
  tfbot:limit:<kind>:<who>                      attempts in the current window (int, TTL: the window),
                                                bot.state.rate_limits
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


def lock_queue_of(lock_key: str) -> str:
    """The waiting line of the lock stored at `lock_key` (a key as the lock index and the change log name it)."""
    return f"{PREFIX}:lockq:{lock_key.removeprefix(f'{PREFIX}:lock:')}"


def lock_version() -> str:
    """Counts every change of a lock, its waiting line or the index (int); bumped by the lock scripts themselves."""
    return f"{PREFIX}:locks:version"


def lock_changes() -> str:
    """The latest lock changes, oldest first (list of "<version> <lock key>", capped), written with the version."""
    return f"{PREFIX}:locks:changed"


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


def interrupt_queued(job_id: str) -> str:
    """Marks a drift apply job whose interrupted report is queued (string, TTL): the reaper, RQ's clean-up of the
    abandoned job and the killed-horse handler may each find the same death, and the issue hears of it once."""
    return f"{PREFIX}:interrupt-queued:{job_id}"


def module_graph(format: int, repo: str, sha: str) -> str:
    """The module graph of commit `sha` of `repo` (string: JSON, TTL); a commit never changes, so neither does it."""
    return f"{PREFIX}:modgraph:{format}:{repo}:{sha}"


def module_calls(format: int, kind: str, oid: str) -> str:
    """What one Terraform file's `module` blocks call, by the blob id of its text and `kind` (`tf` or `tf.json`)."""
    return f"{PREFIX}:modcalls:{format}:{kind}:{oid}"


def notified(receiver: str, event: str, key: str) -> str:
    """Set (SET NX EX) when a once-only notification (`event` about `key`) was queued for `receiver`."""
    return f"{PREFIX}:notified:{receiver}:{event}:{key}"


def notification_counts() -> str:
    """Notifications by outcome (hash: `kind|event|result` -> count), counted by workers, read by /metrics."""
    return f"{PREFIX}:notify:counts"


def change_group(key: str) -> str:
    """A change-record group: its issue and first call (hash, TTL)."""
    return f"{PREFIX}:changes:group:{key}"


def change_group_calls(key: str) -> str:
    """The calls of a change-record group, masked, oldest first (list of JSON, TTL)."""
    return f"{PREFIX}:changes:calls:{key}"


def change_group_lock(key: str) -> str:
    """Held (SET NX EX, owner token) while one poller writes the group's issue."""
    return f"{PREFIX}:changes:lock:{key}"


def change_seen(event_id: str) -> str:
    """A CloudTrail event already recorded (string: the issue number, TTL): a redelivered message adds nothing."""
    return f"{PREFIX}:changes:seen:{event_id}"


def change_counts() -> str:
    """How many messages change records handled, by outcome (hash of counters)."""
    return f"{PREFIX}:changes:counts"


def change_pollers() -> str:
    """Each running change-record poller's last poll (hash: host:pid -> JSON)."""
    return f"{PREFIX}:changes:pollers"


def change_index_due() -> str:
    """Held (SET NX EX state_refresh) by the poller that queued this period's reading of the projects' states."""
    return f"{PREFIX}:changes:index-due"


def change_index_projects() -> str:
    """The projects whose state was read (hash: project id -> JSON of the project and when, TTL)."""
    return f"{PREFIX}:changes:indexed"


def change_index_ids(project_id: str) -> str:
    """The resource identifiers one project's state holds (set, TTL)."""
    return f"{PREFIX}:changes:ids:{project_id}"


def check_run(command_id: str, project_id: str) -> str:
    """The check run one command writes for one project (hash: `id` GitHub's id, `sent` what it last completed)."""
    return f"{PREFIX}:checkrun:{command_id}:{project_id}"


def check_run_of(repo: str, check_run_id: int) -> str:
    """Which command, PR, head and project a check run of `repo` is of (string: JSON), for its Apply button."""
    return f"{PREFIX}:checkrun-of:{repo}:{int(check_run_id)}"


def drift_checks() -> str:
    """The last drift check of every project (hash: project id -> JSON, bot.state.drift_checks)."""
    return f"{PREFIX}:drift:last"


def drift_issues() -> str:
    """The drift issue of every project that has one open (hash: project id -> issue number)."""
    return f"{PREFIX}:drift:issues"


def drift_scheduler() -> str:
    """The drift scheduler's lease (string: the holder's owner token, with a PX expiry), bot.state.drift_schedule."""
    return f"{PREFIX}:drift:scheduler"


def drift_slots() -> str:
    """The last drift slot handled per repository (hash: repo -> unix seconds of the cron fire time)."""
    return f"{PREFIX}:drift:slots"


def drift_due(slot: float, project_id: str) -> str:
    """Set (NX) when one project's check of one slot is queued: a scheduler taking over mid-slot queues it once."""
    return f"{PREFIX}:drift:due:{int(slot)}:{project_id}"


def drift_projects(repo: str, config: str, sha: str) -> str:
    """The projects of `repo` at commit `sha` under the repos[] entry whose fingerprint is `config` (JSON)."""
    return f"{PREFIX}:drift:projects:{repo}:{config}:{sha}"


def sign_in(session_id: str) -> str:
    """One signed-in session of the lock page (string: JSON object, TTL: the session's life)."""
    return f"{PREFIX}:signin:{session_id}"


def rate_limit(kind: str, who: str) -> str:
    """How many `kind` attempts `who` made in the current window (int, TTL: the rest of the window)."""
    return f"{PREFIX}:limit:{kind}:{who}"


def github_health() -> str:
    """Whether the last call to GitHub as the App worked (string: JSON, TTL), bot.state.github_health."""
    return f"{PREFIX}:github:health"
