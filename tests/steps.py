"""Bash runs a piece of a rendered script after the real step helper
(templates/scripts/osception-step.sh), as a node's setup script does, with the
commands it must not run replaced, and the progress lines it wrote are read back:
the one harness of the tests of the shell side (test_cloudinit_and_shell, test_bake)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import osception

STEP_SH = Path(osception.__file__).parent / "templates" / "scripts" / "osception-step.sh"


def run(tmp_path: Path, node: str, body: str, path: dict[str, str] | None = None,
        env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`body` in bash after osception-step.sh, as node `node`, its progress log in
    tmp_path/log (a new one each run). `path` ({name: shell body}): programs on a PATH
    of their own before the system's; `env`: more variables. The run, and the progress
    lines it wrote (none when it wrote none)."""
    script, log = tmp_path / "run.sh", tmp_path / "log"
    script.write_text(f". {STEP_SH}\n{body}")
    shutil.rmtree(log, ignore_errors=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, program in (path or {}).items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{program}\n")
        (bin_dir / name).chmod(0o755)
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={
        "OSCEPTION_NODE": node, "OSCEPTION_LOG_DIR": str(log), "PATH": f"{bin_dir}:/usr/bin:/bin", **(env or {})})
    progress = log / "progress.log"
    return r, progress.read_text().splitlines() if progress.exists() else []
