"""Which waiting jobs a sensor tick may claim: a fair share for each tenant, and no more than Dagster can start soon.

- **Fair share**: at most `max_jobs_per_tenant` runs of one tenant queued or running at once. The rest of its jobs
  wait in DynamoDB, unclaimed, so a tenant importing 500 leads does not queue 500 runs ahead of another tenant's
  form submission.
- **Backpressure**: at most `max_queued_runs` runs waiting in Dagster's run queue. A backlog waits in DynamoDB, where
  every tick can still choose from it, not in the run queue, where runs start oldest first whoever they are for.
- **Fewest first**: when there is room for fewer runs than tenants waiting, a tenant with fewer runs in flight goes
  first (oldest job first among equals): one tenant's first job before another's fifth.
- **In order**: a tenant's jobs are claimed in creation order; a job held back stays ahead of its tenant's later ones.

Both default to 4 (IMAGEFLOW_MAX_JOBS_PER_TENANT, IMAGEFLOW_MAX_QUEUED_RUNS), sized to deploy/dagster.yaml, where at
most 4 imageflow runs execute at once (pool `openai_images`, checked per run, under 8 run slots): one tenant alone
may fill them, half the run slots, and another tenant's first job waits only for one of its runs to end, never
behind its backlog. Four queued runs refill every slot once between two sensor ticks, and a job claimed now waits
behind at most one round of runs. Raise both with the pool.

Runs are counted from Dagster's run storage, so the limits hold on any Dagster instance, whatever its run
coordinator: one query per tick, and none in a tick with no job to claim; the runs this tick requests are added as
it goes. Only jobs to be claimed are held: a job that already carries a claim (its run lost, its lease lapsed) is
recovered as before, and its run is counted.
"""

from collections import Counter
from collections.abc import Iterator

import dagster as dg

from imageflow_dagster.flow.claim_runs import ALIVE_STATUSES
from imageflow_dagster.flow.job_queue import WaitingJobs
from imageflow_dagster.flow.job_store import CLAIM_ID
from imageflow_dagster.flow.seed_handoff import is_handed_over
from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.run_tags import TENANT_TAG, tag_value

NOT_YET_STARTED = {dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED}


def tenant_of(job: dict) -> str:
    """The tenant as its runs' `imageflow/tenant_id` tag spells it."""
    return tag_value(job.get("tenant_id", ""))


class Admission:
    """One tick's counts: runs in flight per tenant, runs not yet started, and what the tick requested so far."""

    def __init__(self, instance: dg.DagsterInstance, settings: SettingsResource):
        self.max_per_tenant = settings.max_jobs_per_tenant
        self.max_queued = settings.max_queued_runs
        self.max_requests = settings.sensor_max_runs_per_tick
        self.require_handoff = settings.require_handoff
        self.in_flight: Counter = Counter()
        self.queued = 0
        self.held = 0  # jobs left waiting this tick, for the tick's log line
        self._instance = instance
        self._runs_read = False
        self._counted = 0  # how many of the tick's run requests are in the counts

    def turn(self, batch: WaitingJobs, blocked: list[str], requests: list[dg.RunRequest]) -> "Turn":
        """The tick's turn at one window of jobs; `blocked`: tenants held earlier in this pass of the cursor."""
        if not self._runs_read and any(self.needs_claim(job) for job in batch.jobs):
            self._read_runs()
        self.count(requests)
        return Turn(self, batch, frozenset(blocked), requests)

    def _read_runs(self) -> None:
        """Every run in flight, of any job: runs launched by hand count toward their tenant's share (once they carry
        its tag, which a run adds when it starts) and take a place in the queue like the sensor's own."""
        records = self._instance.get_run_records(filters=dg.RunsFilter(statuses=list(ALIVE_STATUSES)))
        runs = [record.dagster_run for record in records]
        self.in_flight = Counter(run.tags[TENANT_TAG] for run in runs if TENANT_TAG in run.tags)
        self.queued = sum(run.status in NOT_YET_STARTED for run in runs)
        self._runs_read = True
        self._counted = 0  # the runs this tick requested before are not in storage yet

    @property
    def runs_queued(self) -> int | None:
        """Runs not yet started, this tick's requests included (once counted); None: the tick read no runs."""
        return self.queued if self._runs_read else None

    def needs_claim(self, job: dict) -> bool:
        """A job the tick would claim for a new run (a claimed job, or one the seed still owns, is not admitted)."""
        return not job.get(CLAIM_ID) and (not self.require_handoff or is_handed_over(job))

    def has_share(self, tenant: str, requests: list[dg.RunRequest]) -> bool:
        self.count(requests)
        return self.in_flight[tenant] < self.max_per_tenant

    def has_room(self, requests: list[dg.RunRequest]) -> bool:
        self.count(requests)
        return len(requests) < self.max_requests and self.queued < self.max_queued

    def count(self, requests: list[dg.RunRequest]) -> None:
        """Adds the run requests made since the last call: each is a run about to be queued."""
        if not self._runs_read:
            return  # no job to claim yet: nothing to count for
        for request in requests[self._counted :]:
            self.in_flight[request.tags.get(TENANT_TAG, "")] += 1
            self.queued += 1
        self._counted = len(requests)


class Turn:
    """One window of jobs in one tick: iterating yields the jobs to consider, in the order to consider them; then
    `passed` and `held_tenants` tell the cursor (job_queue.advance) how far it moves and who waits behind it."""

    def __init__(self, admission: Admission, batch: WaitingJobs, blocked: frozenset, requests: list):
        self._admission = admission
        self._batch = batch
        self._requests = requests
        self._claimed, self._candidates, self._held = self._sort(blocked)
        self._no_room: set[str] = set()  # job ids left because the deployment had no room for another run

    def __iter__(self) -> Iterator[dict]:
        yield from self._claimed
        for job in self._candidates:
            # Decided as the tick goes: a candidate that turned out a bad record took no run, and no share.
            if not self._admission.has_share(tenant_of(job), self._requests):
                self._held.append(job)
            elif self._admission.has_room(self._requests):
                yield job
            else:
                self._no_room.add(job["job_id"])
        self._admission.count(self._requests)
        self._admission.held += len(self._held) + len(self._no_room)

    @property
    def passed(self) -> int:
        """How many of the sweep's jobs the cursor moves past: up to the first one left for lack of room, where the
        next tick continues. Jobs held for their tenant's share are passed: the front of the queue shows them again."""
        for position, job in enumerate(self._batch.sweep):
            if job["job_id"] in self._no_room:
                return position
        return len(self._batch.sweep)

    @property
    def held_tenants(self) -> set[str]:
        """Tenants with a job held for their share that the cursor has now passed."""
        behind = {job["job_id"] for job in self._batch.sweep[: self.passed]} | self._batch.front_only_ids
        return {tenant_of(job) for job in self._held if job["job_id"] in behind}

    def _sort(self, blocked: frozenset) -> tuple[list[dict], list[dict], list[dict]]:
        """Claimed jobs (always considered), candidates fewest-in-flight first then oldest (whether each is within
        its tenant's share is decided as the tick goes), and jobs held because their tenant is `blocked` and they are
        outside the front (its earlier jobs wait there, in order)."""
        admission, front = self._admission, self._batch.front_ids
        claimed, candidates, held = [], [], []
        ahead: Counter = Counter()  # per tenant, its candidates so far in this window
        for position, job in enumerate(self._batch.jobs):
            tenant = tenant_of(job)
            if not admission.needs_claim(job):
                claimed.append(job)
            elif tenant in blocked and job["job_id"] not in front:
                held.append(job)
            else:
                candidates.append((admission.in_flight[tenant] + ahead[tenant], position, job))
                ahead[tenant] += 1
        candidates.sort(key=lambda candidate: candidate[:2])
        return claimed, [job for _, _, job in candidates], held
