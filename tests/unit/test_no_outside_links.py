"""No document of the repository links outside it: references are to files in it, or plain names."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("localcloud/*.md"), *ROOT.glob("console/*")]
)
# What ships or builds the stack: its code (comments and price sources included) and its templates.
SHIPPED = sorted(
    [
        *(
            path
            for folder in ("layers", "functions", "scripts", "bench", "pipeline", "statemachines")
            for path in (ROOT / folder).rglob("*")
            if path.suffix in {".py", ".json", ".txt"} and path.is_file()
        ),
        ROOT / "Makefile",
        ROOT / "samconfig.toml",
    ]
)
URL = re.compile(r"https?://[^\s)`'\"<>]+")
# Loopback addresses of the local stack, the placeholder of a deployed API's URL, the SVG namespace name.
ALLOWED = re.compile(
    r"https?://(127\.0\.0\.1|localhost)([:/]|$)|https://<api-id>\.execute-api\.|http://www\.w3\.org/2000/svg$"
)
# The deployed API's own address, as the template's output builds it.
TEMPLATE_OUTPUT = "https://${ControlPlaneApi}.execute-api.${AWS::Region}.amazonaws.com/v1"


def test_documents_name_only_loopback_urls() -> None:
    assert len(DOCUMENTS) > 5
    outside = [
        f"{path.relative_to(ROOT)}: {url}"
        for path in DOCUMENTS
        for url in URL.findall(path.read_text())
        if not ALLOWED.match(url)
    ]
    assert outside == []


def test_the_code_and_templates_name_only_loopback_urls() -> None:
    """Price sources, comments and docstrings name pages in plain words, never by a link outside."""
    assert len(SHIPPED) > 50
    outside = [
        f"{path.relative_to(ROOT)}: {url}"
        for path in [*SHIPPED, ROOT / "template.yaml"]
        for url in URL.findall(path.read_text().replace(TEMPLATE_OUTPUT, ""))
        if not ALLOWED.match(url)
    ]
    assert outside == []


def test_relative_markdown_links_name_files_of_the_repository() -> None:
    for path in [p for p in DOCUMENTS if p.suffix == ".md"]:
        for target in re.findall(r"\]\(([^)#\s]+)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to {target}"
