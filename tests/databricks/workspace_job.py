"""What a real workspace runs for the contract tests: upload it and name it in
``DURABLE_JOBS_DATABRICKS_PYTHON_FILE``. It follows the fake's convention: a ``durable-fake:<s>s:<RESULT>``
argument sleeps that long, then exits 0 for SUCCESS and 1 otherwise (a FAILED task); no argument exits 0 at once.
"""

from __future__ import annotations

import re
import sys
import time

SCRIPT_RE = re.compile(r"^durable-fake:(\d+(?:\.\d+)?)s:([A-Z_]+)$")


def main(argv: list[str]) -> int:
    for arg in argv:
        match = SCRIPT_RE.match(arg)
        if match:
            time.sleep(float(match[1]))
            return 0 if match[2] == "SUCCESS" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
