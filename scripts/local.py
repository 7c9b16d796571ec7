"""`make local`'s hook after the deploy (`python -m localcloud serve --on-deployed scripts.local:ready`).

Bootstraps an operator key, as `python -m scripts.api_keys` would, and writes `.localcloud/local/env.sh`:
the exports the README's walkthrough needs in a second shell (`source .localcloud/local/env.sh`). The key
lives as long as the emulator: nothing survives a restart, so each start writes a new file.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from scripts.api_keys import create_operator_key

CONSOLE_KEY_PARAMETER = "key"  # console/app.js reads the operator key from the URL fragment's key=


def console_link(console_url: str, operator_key: str) -> str:
    """The console's URL with the key in its fragment: browsers never send a fragment to a server."""
    return f"{console_url}#{CONSOLE_KEY_PARAMETER}={operator_key}"


def environment(cloud: Any, stack: Any, operator_key: str) -> dict[str, str]:
    """What a second shell needs to follow the README with the stack `make local` runs."""
    outputs = stack.outputs
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": cloud.region,
        "AWS_ENDPOINT_URL": cloud.endpoint_url,
        "MLAAS_API_URL": str(outputs["StatusApiUrl"]),
        "OPERATOR_KEY": operator_key,
        "UPLOADS_BUCKET": str(outputs["UploadsBucketName"]),
        "JOBS_TABLE": str(outputs["JobsTableName"]),
        "API_KEYS_TABLE": str(outputs["ApiKeysTableName"]),
        "STATE_MACHINE_ARN": str(outputs["TrainingJobStateMachineArn"]),
    }


def write_environment(path: Path, variables: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `make local` for this run of the emulator (nothing survives a restart)."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    # Owner-only: it holds an operator key (of a local emulator, gone when it stops).
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("\n".join(lines) + "\n")


def ready(cloud: Any, stack: Any, console_url: str | None) -> list[str]:
    operator_key = create_operator_key(cloud, dict(stack.outputs))
    env_file = cloud.state_dir / "env.sh"
    write_environment(env_file, environment(cloud, stack, operator_key))
    shown = env_file.relative_to(Path.cwd()) if env_file.is_relative_to(Path.cwd()) else env_file
    lines = [
        f"Operator key (bootstrapped for this run): {operator_key}",
        f"In another shell: source {shown}   # AWS_*, MLAAS_API_URL, OPERATOR_KEY, UPLOADS_BUCKET, ...",
    ]
    if console_url is not None:
        lines.append(f"Open the console: {console_link(console_url, operator_key)}")
    return [*lines, ""]
