#!/usr/bin/env bash
# Set up (if needed), start the services the tests use, and run the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
exec .venv/bin/python -m pytest "$@"
