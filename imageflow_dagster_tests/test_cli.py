"""The `imageflow` CLI against moto: bootstrap, submit, status, one-line errors; `imageflow dev` on `dg dev`."""

import json
import logging
import sys
from pathlib import Path

import pytest

from imageflow_dagster.bootstrap import public_read_statement
from imageflow_dagster.cli import dev, main
from imageflow_dagster.flow.progress import LiveProgress
from imageflow_dagster_tests.test_bootstrap import seed_bucket_policy

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def test_bootstrap_is_idempotent(settings, capsys):
    assert main(["bootstrap"]) == 0
    output = capsys.readouterr().out
    assert f"table {settings.tables.jobs}: exists" in output and f"bucket {settings.bucket}: exists" in output


def test_bootstrap_changes_a_bucket_policy_only_with_public_images(settings, s3_client, capsys):
    seed = seed_bucket_policy(settings.bucket)
    text = json.dumps(seed, indent=2)
    s3_client.put_bucket_policy(Bucket=settings.bucket, Policy=text)

    assert main(["bootstrap"]) == 0
    assert f"bucket {settings.bucket}: bucket policy left as is; --public-images would add" in capsys.readouterr().out
    assert s3_client.get_bucket_policy(Bucket=settings.bucket)["Policy"] == text

    assert main(["bootstrap", "--public-images"]) == 0
    assert "kept 2 other statement(s)" in capsys.readouterr().out
    statements = json.loads(s3_client.get_bucket_policy(Bucket=settings.bucket)["Policy"])["Statement"]
    assert statements == [*seed["Statement"], public_read_statement(settings.bucket)]


@pytest.mark.parametrize("example", ["text_only.json", "images_only.json", "mixed_with_dependencies.json"])
def test_submit_example_writes_seed_records(settings, db, capsys, example):
    code = main(["submit", "--workflow", str(EXAMPLES / example), "--answers", str(EXAMPLES / "answers.json"), "--answer", "extra=1"])
    assert code == 0
    job_id = capsys.readouterr().out.strip()
    job = db.get_item(db.jobs_table, {"job_id": job_id})
    assert job["status"] == "processing" and job_id.startswith("job_")
    workflow = db.get_item(db.workflows_table, {"workflow_id": job["workflow_id"]})
    assert workflow["steps"] == json.loads((EXAMPLES / example).read_text())["steps"]
    submission = db.get_item(db.submissions_table, {"submission_id": job["submission_id"]})
    assert submission["submission_data"]["extra"] == "1" and submission["form_id"] == workflow["form_id"]
    form = db.get_item(db.forms_table, {"form_id": submission["form_id"]})
    assert form["form_fields_schema"]["fields"]


def test_status_of_a_finished_job(pipeline, capsys):
    assert main(["submit", "--demo"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert pipeline.run(job_id).success
    assert main(["status", job_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "completed" and len(report["image_urls"]) == 5 and report["cost_usd"] > 0
    assert main(["status", job_id]) == 0
    assert f"job {job_id}: completed" in capsys.readouterr().out


def test_status_of_a_running_job_shows_its_live_step(db, capsys):
    assert main(["submit", "--demo"]) == 0
    job_id = capsys.readouterr().out.strip()
    progress = LiveProgress(db, job_id, logging.getLogger(__name__))  # the writer the running assets use
    progress.say(2, "Planned 2 images.", "planning")
    progress.say(2, "Generating image 1/2: Logo concept", "generating")
    assert main(["status", job_id]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        f"job {job_id}: processing",
        "  live step: Generating image 1/2: Logo concept",
    ]
    assert main(["status", job_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["status"], report["live_step"]) == ("processing", "Generating image 1/2: Logo concept")


def test_unknown_job_is_one_line_with_exit_2(settings, capsys):
    assert main(["status", "job_missing"]) == 2
    assert capsys.readouterr().err == f"imageflow: job job_missing not found in table {settings.tables.jobs}\n"


def test_missing_table_names_it(settings, db, capsys):
    db.get_client().delete_table(TableName=settings.tables.jobs)
    assert main(["status", "job_x"]) == 2
    err = capsys.readouterr().err
    assert f"DynamoDB table '{settings.tables.jobs}' does not exist" in err and err.count("\n") == 1


def test_unreachable_endpoint(settings, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert main(["status", "job_x"]) == 2
    assert capsys.readouterr().err.startswith("imageflow: cannot reach AWS at http://127.0.0.1:9")


def test_bad_workflow_file(settings, tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["submit", "--workflow", str(broken)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [[], ["dev"], ["bootstrap"], ["submit"], ["status"], ["spend"], ["local-openai"], ["worker"]]
)
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0 and "usage: imageflow" in capsys.readouterr().out


# ---- dev: `dg dev` (dagster-dg-cli), not the superseded `dagster dev`
DG_DEV = [sys.executable, "-m", "dagster_dg_cli.cli", "dev", "-h", "127.0.0.1", "-p", "3456"]


def test_dev_runs_dg_dev_on_the_project_from_the_source_tree(tmp_path):
    assert dev.dg_dev_command(tmp_path, 3456) == [*DG_DEV, "--target-path", str(ROOT)]  # pyproject's [tool.dg]
    assert not (tmp_path / "workspace.yaml").exists()


def test_dev_without_the_source_tree_runs_dg_dev_on_a_workspace_file(tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "PROJECT_ROOT", tmp_path / "site-packages")  # installed: no pyproject.toml
    workspace = tmp_path / "workspace.yaml"
    assert dev.dg_dev_command(tmp_path, 3456) == [*DG_DEV, "-w", str(workspace)]
    assert "module_name: imageflow_dagster.definitions" in workspace.read_text()
    assert "location_name: imageflow" in workspace.read_text()


@pytest.mark.parametrize("missing", ["IMAGEFLOW_CELERY_BROKER_URL", "IMAGEFLOW_CELERY_BACKEND_URL", "DAGSTER_HOME"])
def test_worker_refuses_to_start_without_its_settings(monkeypatch, capsys, tmp_path, missing):
    configured = {"IMAGEFLOW_CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
                  "IMAGEFLOW_CELERY_BACKEND_URL": "redis://127.0.0.1:1/1", "DAGSTER_HOME": str(tmp_path)}
    for key, value in configured.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(missing)
    assert main(["worker", "--concurrency", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"imageflow: {missing} is not set: `imageflow worker` needs it (see deploy/README.md)"
    )
