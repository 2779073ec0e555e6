"""What the seed's API hands over with a job (deploy/seed-handoff/): the hand-off mark, and for a single-step rerun
the step's 0-based index and whether to continue with the steps that depend on it."""

HANDOFF_MARK = "imageflow_handoff"
RERUN_STEP_INDEX = "imageflow_rerun_step_index"
RERUN_CONTINUE = "imageflow_rerun_continue"
RERUN_FIELDS = (RERUN_STEP_INDEX, RERUN_CONTINUE)


def step_rerun_config(job: dict) -> dict:
    """The run config of the job's next run: `rerun_steps` and `rerun_dependents` for a handed-over single-step
    rerun, nothing otherwise."""
    index = job.get(RERUN_STEP_INDEX)
    if index is None:
        return {}
    config = {"rerun_steps": [int(index) + 1], "rerun_dependents": bool(job.get(RERUN_CONTINUE, False))}
    return {"ops": {"process_job": {"config": config}}}


def is_handed_over(job: dict) -> bool:
    return bool(job.get(HANDOFF_MARK))
