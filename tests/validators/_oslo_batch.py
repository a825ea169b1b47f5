"""Both checks of oslo.py (oslo-config-validator's own main, then _oslo_load.py) for
several files of one kind, in one process of the services venv:

    VENV/bin/python _oslo_batch.py JOBS.json

JOBS.json: [{"validator": [ARG...], "loader": [ARG...]}, ...], each list the command line
oslo.py would give that program after its name. Prints one JSON list: per job, each
check's exit status and what it said. Why one process: each check spends seconds
importing the namespaces' projects (nova, neutron...) and milliseconds checking a file;
here the imports are paid once for every file of a kind. Each file still gets a fresh
ConfigOpts in both checks, as in a process of its own.
"""

import contextlib
import io
import json
import logging
import sys
from pathlib import Path


def main(jobs_file):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _oslo_load
    from oslo_config import validator

    root = logging.getLogger()
    out = []
    for job in json.loads(Path(jobs_file).read_text()):
        said = io.StringIO()
        handler = logging.StreamHandler(said)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)  # what the validator prints at --fatal-warnings
        sys.argv = ["oslo-config-validator", *job["validator"]]
        try:
            with contextlib.redirect_stdout(said):
                validated = validator.main()
        except Exception as e:  # the file itself cannot be parsed, say
            said.write(f"{type(e).__name__}: {e}\n")
            validated = 1
        finally:
            root.removeHandler(handler)
        loaded_said = io.StringIO()
        with contextlib.redirect_stdout(loaded_said):
            loaded = _oslo_load.main(job["loader"])
        out.append({"validator": [validated, said.getvalue()],
                    "loader": [loaded, loaded_said.getvalue()]})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
