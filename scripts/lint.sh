#!/usr/bin/env bash
# The static checks CI runs before the tests: ruff's rules and mypy's types, as configured in
# pyproject.toml (both come with the pinned `lint` extra that scripts/setup.sh installs).
# Fails when either finds something; `.venv/bin/ruff check --fix ...` repairs what it can.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit $?
status=0
.venv/bin/ruff check src tests scripts bench || status=$?
.venv/bin/mypy || status=$?
exit $status
