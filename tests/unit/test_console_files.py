"""The operator console's static files (console/): self-contained, and in step with the code they mirror."""

from __future__ import annotations

import json
import re
from pathlib import Path

from controlplane.jobs.lifecycle import JobStatus

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"


def test_the_page_lists_every_job_status_in_the_lifecycle_order() -> None:
    found = re.search(r"const STATUSES = \[([^\]]*)\]", (CONSOLE / "app.js").read_text())
    assert found, "console/app.js defines STATUSES"
    assert json.loads(f"[{found.group(1)}]") == [status.value for status in JobStatus]


# An XML namespace name, not a link: document.createElementNS needs it, and no browser fetches it.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def test_nothing_in_the_console_points_outside_the_repository() -> None:
    for path in sorted(CONSOLE.iterdir()):
        text = path.read_text().replace(f'"{SVG_NAMESPACE}"', '""')
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path.name
        for target in re.findall(r"""(?:src|href)="([^"]+)"|from "([^"]+)"|import\("([^"]+)"\)""", text):
            relative = next(part for part in target if part)
            assert (CONSOLE / relative).resolve().is_file(), f"{path.name} refers to {relative}"


def test_the_page_fetches_the_state_machine_the_template_deploys() -> None:
    found = re.search(r'const ASL_URL = "\.\./statemachines/([^"]+)"', (CONSOLE / "app.js").read_text())
    assert found
    assert f"DefinitionUri: statemachines/{found.group(1)}" in (ROOT / "template.yaml").read_text()
