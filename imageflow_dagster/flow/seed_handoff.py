"""What the seed's API hands over with a job (deploy/seed-handoff/): the hand-off mark, and for a single-step rerun
the step's 0-based index and whether to continue with the steps that depend on it.

The seed's API sets a job `processing` before it hands it over, so the sensor may claim the job in between. The
mark tells the entries into `processing` apart: every hand-off writes a fresh one (a uuid from the script, the
execution's id from the state machine) in the same UpdateItem as its rerun fields. A claim records the mark it
took; the run's final write removes the mark only while it is still that one, and otherwise leaves the job
`processing` with the newer mark and rerun fields for the sensor to claim again (job_store.py). A mark `true`,
written by an earlier version of the hand-off, still counts as handed over."""

HANDOFF_MARK = "imageflow_handoff"
CLAIMED_HANDOFF = "imageflow_claimed_handoff"  # the mark the job's claim took; absent when it took none
RERUN_STEP_INDEX = "imageflow_rerun_step_index"
RERUN_CONTINUE = "imageflow_rerun_continue"
RERUN_FIELDS = (RERUN_STEP_INDEX, RERUN_CONTINUE)


def step_rerun_config(job: dict) -> dict:
    """The run config of the job's next run: `rerun_steps` and `rerun_dependents` for a handed-over single-step
    rerun, nothing otherwise. `job` is the item the claim returned: one read before it may predate the hand-off."""
    index = job.get(RERUN_STEP_INDEX)
    if index is None:
        return {}
    config = {"rerun_steps": [int(index) + 1], "rerun_dependents": bool(job.get(RERUN_CONTINUE, False))}
    return {"ops": {"process_job": {"config": config}}}


def claimed_rerun_config(job: dict) -> dict:
    """The run config of the hand-off a claimed job's claim took. One that arrived since has overwritten its rerun
    fields: the claim's run then runs the whole job, and its final write leaves the job to the newer one."""
    return step_rerun_config(job) if job.get(HANDOFF_MARK) == job.get(CLAIMED_HANDOFF) else {}


def is_handed_over(job: dict) -> bool:
    """A hand-off no finished run has consumed yet: the final write removes the mark it ran for."""
    return bool(job.get(HANDOFF_MARK))
