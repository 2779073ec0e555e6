"""Hand-made mutants: break one claim at a time in a scratch copy of the tree and check the suite goes red.

Each mutant replaces one exact snippet of product code (the replacement must apply exactly once) and runs the
tests that should catch it. KILLED means those tests failed, SURVIVED means the claim is unguarded. Run with
`make mutate` (or `python scripts/mutants.py [NAME ...]`); it never touches the working tree.

Why not mutmut or cosmic-ray: they generate hundreds of mutants over flow/, sensors.py and resources/ and rerun the
suite for each; at minutes per run that is days on 2 cores. These mutants break the claims the docs make.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = "imageflow_dagster_tests/"
IAM_POLICY = "deploy/iam-policy.json"


def policy_statement(sid: str) -> str:
    """The text of one statement of the IAM policy (not its last one), comma included: removing it leaves valid
    JSON, and the mutant follows the statement's content as it changes."""
    text = (ROOT / IAM_POLICY).read_text()
    at = text.find(f'"Sid": "{sid}"')
    if at < 0:
        return f"<no statement {sid}>"  # tests_fail() then reports the snippet missing
    end = text.index("\n    },\n", at) + len("\n    },\n")
    return text[text.rfind("    {\n", 0, at) : end]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant(
        "images one after another",
        "imageflow_dagster/flow/parallel.py",
        "    if len(items) <= 1 or workers <= 1:",
        "    if True:",
        (TESTS + "test_concurrency.py",),
    ),
    Mutant(
        "run-failure sensor ignores dagster/will_retry",
        "imageflow_dagster/sensors.py",
        'if job_id and run.tags.get(WILL_RETRY_TAG) != "true":',
        "if job_id:",
        (TESTS + "test_ownership.py",),
    ),
    Mutant(
        "placeholder instead of the configured API key",
        "imageflow_dagster/resources/openai_client.py",
        'key = api_key or "no-key-needed-for-local-server"',
        'key = "no-key-needed-for-local-server"',
        (TESTS + "test_faults.py",),
    ),
    Mutant(
        "S3 writes overwrite (no IfNoneMatch)",
        "imageflow_dagster/resources/s3.py",
        '                IfNoneMatch="*",\n',
        "",
        (TESTS + "test_claims.py",),
    ),
    Mutant(
        "start_run ignores another run's claim",
        "imageflow_dagster/flow/job_store.py",
        'condition=f"attribute_exists(#job_id) AND ({_OWNED_BY} OR #{LEASE_UNTIL} < :now)",',
        'condition="attribute_exists(#job_id)",',
        (TESTS + "test_ownership.py",),
    ),
    Mutant(
        "no shared rate budget (every call goes at once)",
        "imageflow_dagster/resources/rate_budget.py",
        "        now = time.time()\n        if budget.per_minute is None:",
        "        return 0.0\n        now = time.time()\n        if budget.per_minute is None:",
        (TESTS + "test_rate_budget.py", TESTS + "test_openai_as_it_is.py"),
    ),
    Mutant(
        "insufficient_quota waited on like a rate limit",
        "imageflow_dagster/resources/openai_retry.py",
        'if getattr(exc, "code", None) == "insufficient_quota":',
        "if False:",
        (TESTS + "test_openai_as_it_is.py::test_exhausted_quota_fails_at_once_without_retries",),
    ),
    Mutant(
        "no successor after a 404 model_not_found",
        "imageflow_dagster/resources/openai_client.py",
        '            if getattr(exc, "code", None) != "model_not_found":',
        "            if True:",
        (TESTS + "test_openai_as_it_is.py::test_models_answering_404_complete_on_their_successors",),
    ),
    Mutant(
        "retired models called by their old name",
        "imageflow_dagster/resources/openai_client.py",
        "        replaced = lifecycle.resolve(model, today_utc(), self.model_replacements)",
        "        replaced = None",
        (TESTS + "test_openai_as_it_is.py::test_a_model_past_its_shutdown_date_is_replaced_before_the_call",),
    ),
    Mutant(
        "image settings sent as the workflow wrote them",
        "imageflow_dagster/resources/image_params.py",
        '    if "size" in fitted:',
        "    if False:",
        (TESTS + "test_model_lifecycle.py", TESTS + "test_openai_as_it_is.py"),
    ),
    Mutant(
        "a failed job's execution_steps looks materialized",
        "imageflow_dagster/assets/execution_steps.py",
        "    if outcome.failure:\n        return check",
        "    if False:\n        return check",
        (TESTS + "test_operator_view.py",),
    ),
    Mutant(
        "an image blocked by moderation fails the stored check",
        "imageflow_dagster/assets/s3_objects.py",
        "if key not in stored and key not in blocked]",
        "if key not in stored]",
        (TESTS + "test_operator_view.py",),
    ),
    Mutant(
        "a vanished Celery worker goes unnoticed",
        "imageflow_dagster/run_workers/celery_launcher.py",
        "        if worker in self._live_workers():",
        "        if True:",
        (TESTS + "test_celery_fleet.py",),
    ),
    Mutant(
        "a canceled Celery run is revoked without being marked canceling",
        "imageflow_dagster/run_workers/celery_launcher.py",
        "        self._instance.report_run_canceling(run)\n",
        "",
        (TESTS + "test_run_process_lost.py",),
    ),
    Mutant(
        "iam-policy.json does not grant the handoff's PutItem on the jobs table",
        IAM_POLICY,
        policy_statement("HandoffCreatesTargetJobRowsOfTheseAttributesOnly"),
        "",
        (TESTS + "test_iam_policy.py::test_the_policy_allows_every_product_call_and_grants_nothing_unused",),
    ),
    Mutant(
        "the code location offers its resources unlocked (settable from run config)",
        "imageflow_dagster/resources/__init__.py",
        "{key: _locked(resource) for key, resource in built.items()}",
        "{key: resource for key, resource in built.items()}",
        (TESTS + "test_definitions.py",),
    ),
    Mutant(
        "compose.yaml does not pass AWS_ENDPOINT_URL to its services",
        "deploy/compose.yaml",
        "    AWS_ENDPOINT_URL:\n",
        "",
        (TESTS + "test_celery_fleet.py",),
    ),
]


def tests_fail(tests: tuple[str, ...], mutant: Mutant | None = None) -> bool:
    """Run `tests` in a scratch copy of the tree, with `mutant` applied; True when they fail."""
    with tempfile.TemporaryDirectory(prefix="mutant-") as scratch:
        copy = Path(scratch) / "tree"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", ".imageflow", "test-artifacts", "__pycache__"))
        if mutant:
            target = copy / mutant.path
            source = target.read_text()
            if source.count(mutant.old) != 1:
                raise SystemExit(f"mutant {mutant.name!r}: the snippet is not in {mutant.path} exactly once; update it")
            target.write_text(source.replace(mutant.old, mutant.new))
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True,
        )
        return result.returncode != 0


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    control = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    if tests_fail(control):  # a kill only counts if the same tests pass on the unbroken tree
        print(f"control run failed: {' '.join(control)} must pass before mutants mean anything")
        return 2
    survived = []
    for mutant in chosen:
        killed = tests_fail(mutant.tests, mutant)
        print(f"{'KILLED  ' if killed else 'SURVIVED'} {mutant.name}  ({', '.join(mutant.tests)})", flush=True)
        if not killed:
            survived.append(mutant.name)
    print(f"\n{len(chosen) - len(survived)}/{len(chosen)} mutants killed")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
