#!/usr/bin/env bash
# Set up (if needed) and run Docmill on the embedded default: SQLite and files in
# ./docmill-data, a local worker pool. Extra arguments go to `docmill serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/docmill serve "$@"
