"""The real exporter (``python -m exporter``) with its open-files limit lowered first,
soft and hard, to ``$EXPORTER_TEST_OPEN_FILES`` (as a container runtime would set it).
Used by test_http_starvation.py; takes the exporter's own flags."""

import os
import resource
import runpy
import sys
from pathlib import Path

# This checkout's exporter, not an installed one (a script's own directory leads sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

limit = int(os.environ["EXPORTER_TEST_OPEN_FILES"])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
runpy.run_module("exporter", run_name="__main__", alter_sys=True)
