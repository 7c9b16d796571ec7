"""The operator console in headless Chromium, against the real stack in the emulator.

The page is loaded once and left to poll: it must show the tiers, the job, and the running job's state
highlighted in the graph drawn from the ASL; when the job ends (the tenant cancels it, its pipeline is
stopped) the same page must show STOPPED without a reload. Screenshots go to build/console/.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from scripts.jobs import tenant_jobs
from scripts.sample_data import SampleTenant, classification_csv
from tests.console.conftest import Console
from tests.support.browser import Browser

pytestmark = pytest.mark.integration

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "console"
WAIT_SECONDS = 180.0  # a generous bound for a busy machine: each wait polls and returns as soon as it holds
RUNNING_STATE = "Wait for the pipeline to finish"
STOPPED_STATE = "The build was stopped"
T = TypeVar("T")


def _until(read: Callable[[], T], what: str, timeout: float = WAIT_SECONDS) -> T:
    deadline = time.monotonic() + timeout
    last: T = read()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(0.5)
        last = read()
    return last


def _api(console: Console, method: str, path: str, key: str, **kwargs: Any) -> requests.Response:
    """The status API as the page calls it: through the console server's /api/."""
    base = console.server.url.replace("/console/", "/api")
    headers = {"Authorization": f"Bearer {key}"}
    return requests.request(method, base + path, headers=headers, timeout=WAIT_SECONDS, **kwargs)


def _onboard(console: Console) -> tuple[SampleTenant, str]:
    tenant = SampleTenant(
        tenant_id=f"console-{uuid.uuid4().hex[:8]}",
        tier="basic",
        target_column="label",
        feature_columns=("f1", "f2", "f3"),
    )
    body = {
        "tenantId": tenant.tenant_id,
        "tier": "basic",
        "metricThreshold": 0.5,
        "contract": {
            "targetColumn": "label",
            "featureColumns": list(tenant.feature_columns),
            "problemType": "binary_classification",
            "minRows": 50,
        },
    }
    response = _api(console, "POST", "/tenants", console.operator_key, json=body)
    assert response.status_code == 201, response.text
    return tenant, str(response.json()["apiKey"])


def _running_job(console: Console, tenant: SampleTenant) -> dict[str, Any]:
    console.cloud.pipeline_runner.set_outcome(tenant_id=tenant.tenant_id, status="Executing")  # never ends
    console.cloud.client("s3").put_object(
        Bucket=console.outputs["UploadsBucketName"],
        Key=f"tenants/{tenant.tenant_id}/uploads/held.csv",
        Body=classification_csv(tenant, rows=120, seed=3),
    )

    def running() -> dict[str, Any] | None:
        jobs = tenant_jobs(
            console.cloud.client("dynamodb"), console.outputs["JobsTableName"], tenant.tenant_id
        )
        return next((job for job in jobs if job["status"] == "RUNNING"), None)

    return _until(running, "the job to be RUNNING")


def _page(browser: Browser, script: str) -> Any:
    return browser.evaluate(f"(() => {{ {script} }})()")


def _shows(browser: Browser, job_id: str) -> dict[str, Any]:
    """What the page shows now, read off its DOM."""
    script = f"""
        const job = {json.dumps(job_id)};
        const row = document.querySelector(`#jobs tbody tr[data-job="${{job}}"]`);
        const problem = document.querySelector("#problem");
        return {{
          tiers: [...document.querySelectorAll("#tiers tbody tr")].map((r) => r.dataset.tier),
          accountCap: document.querySelector("[data-field=accountCap]")?.textContent || null,
          rowStatus: row ? row.dataset.status : null,
          jobStatus: document.querySelector("#job-status")?.dataset.status || null,
          current: [...document.querySelectorAll("#graph .state.current")].map((n) => n.dataset.state),
          visited: [...document.querySelectorAll("#graph .state.visited")].map((n) => n.dataset.state),
          states: document.querySelectorAll("#graph .state").length,
          problem: problem && !problem.hidden ? problem.textContent : null,
          polls: Number(document.body.dataset.polls || 0),
        }};
    """
    shown: dict[str, Any] = _page(browser, script)
    return shown


def test_the_console_shows_the_tiers_a_running_job_and_its_state_then_the_end(console: Console) -> None:
    tenant, tenant_key = _onboard(console)
    job = _running_job(console, tenant)
    job_id = job["jobId"]
    asl = json.loads(
        (Path(__file__).resolve().parents[2] / "statemachines" / "training_job.asl.json").read_text()
    )

    with Browser() as browser:
        browser.navigate(f"{console.server.url}#key={console.operator_key}&by-tenant={tenant.tenant_id}")
        # The job list shows the job; picking it (a click) opens its path.
        _until(lambda: _shows(browser, job_id)["rowStatus"] == "RUNNING", "the job's row, RUNNING")
        _page(browser, f'document.querySelector(`#jobs tbody tr[data-job="{job_id}"]`).click(); return true;')
        shown = _until(
            lambda: (s := _shows(browser, job_id))["current"] == [RUNNING_STATE] and s, "the running state"
        )
        browser.screenshot(SCREENSHOTS / "running.png")

        assert shown["tiers"] == ["basic", "standard", "premium"]
        assert shown["accountCap"] == "16"
        assert shown["jobStatus"] == "RUNNING"
        assert shown["problem"] is None
        assert shown["states"] == len(asl["States"])  # every state of the ASL is drawn
        assert {"Register the upload as a job", "Start the tenant's pipeline build"} <= set(shown["visited"])
        assert STOPPED_STATE not in shown["visited"]

        # The tenant cancels: its pipeline is stopped and the build ends STOPPED. The open page follows.
        cancelled = requests.post(
            f"{console.outputs['StatusApiUrl']}/jobs/{job_id}/cancel",
            headers={"Authorization": f"Bearer {tenant_key}"},
            timeout=WAIT_SECONDS,
        )
        assert cancelled.status_code == 202, cancelled.text
        ended = _until(
            lambda: (
                (s := _shows(browser, job_id))["jobStatus"] == "STOPPED"
                # The list and the job's panel are separate reads of one poll: wait for both.
                and s["rowStatus"] == "STOPPED"
                and STOPPED_STATE in s["visited"]
                and s
            ),
            "the page to show the job STOPPED, in its row and its panel",
        )
        browser.screenshot(SCREENSHOTS / "stopped.png")
        assert ended["current"] == []
        assert RUNNING_STATE in ended["visited"]


def test_the_operator_routes_behind_the_console(console: Console) -> None:
    """What the page reads: another tenant's job is a 404 like a missing one, tenant keys are refused, and
    the execution's path is the states Step Functions entered."""
    # The stack's StatusApiUrl output is the local API, on the port the emulator was given.
    assert console.outputs["StatusApiUrl"] == f"http://127.0.0.1:{console.api_port}/v1"
    assert console.cloud.api_url(console.stack, "ControlPlaneApi") == console.outputs["StatusApiUrl"]
    tenant, tenant_key = _onboard(console)
    other, _ = _onboard(console)
    job_id = _running_job(console, tenant)["jobId"]
    operator = console.operator_key

    listing = _api(console, "GET", f"/tenants/{tenant.tenant_id}/jobs", operator)
    assert listing.status_code == 200, listing.text
    assert [item["jobId"] for item in listing.json()["items"]] == [job_id]
    assert _api(console, "GET", f"/tenants/{other.tenant_id}/jobs", operator).json()["items"] == []

    mine = _api(console, "GET", f"/tenants/{tenant.tenant_id}/jobs/{job_id}", operator)
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "RUNNING"
    for path in (
        f"/tenants/{other.tenant_id}/jobs/{job_id}",
        f"/tenants/{other.tenant_id}/jobs/{job_id}/execution",
    ):
        missing = _api(console, "GET", path, operator)
        assert missing.status_code == 404, missing.text
        assert missing.json()["message"] == "no such job"
    unknown = _api(console, "GET", f"/tenants/{tenant.tenant_id}/jobs/job-{'0' * 64}", operator)
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["message"] == "no such job"
    assert _api(console, "GET", f"/tenants/{tenant.tenant_id}/jobs", tenant_key).status_code == 403

    path = _until(
        lambda: (
            (
                body := _api(
                    console, "GET", f"/tenants/{tenant.tenant_id}/jobs/{job_id}/execution", operator
                ).json()
            )
            and body.get("current") == [RUNNING_STATE]
            and body
        ),
        "the execution to wait for its pipeline",
    )
    assert path["status"] == "RUNNING"
    assert path["executionArn"] == mine.json()["executionArn"]
    names = [visit["name"] for visit in path["visits"]]
    assert names[0] == "Does the event name an object version?"
    assert names[-1] == RUNNING_STATE
    assert {"Validate the dataset against the tenant's contract", "Record that the pipeline started"} <= set(
        names
    )
