#!/usr/bin/env python3
"""Runs the integration tests with pytest (Debian's python3-pytest), for `make itest`.
Extra arguments go to pytest, e.g. `make itest ARGS="-k produce"`."""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.exit(subprocess.call([sys.executable, "-m", "pytest", here, "-v"] + sys.argv[1:], cwd=here))
