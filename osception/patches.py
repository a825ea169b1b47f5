"""`patches:` of osception.yaml: one script applies them wherever a project runs,
templates/scripts/osception-patch.py (a Kolla pod's `patch` init container, a node's
Ansible pass, the devcloud running that same init container); it is shipped as a file
to each of those places, and osception imports it from here (review_url for the nodes,
the tests' apply).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parent / "templates" / "scripts" / "osception-patch.py"


def _load():
    spec = importlib.util.spec_from_file_location("osception_patch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load()
review_url = script.review_url
PatchError = script.PatchError
