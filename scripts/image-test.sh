#!/usr/bin/env bash
# The container step of CI: build the images from Debian packages (scripts/image.sh; the base
# rootfs and podman's layers stay cached between runs on one machine) and run tests/image
# against them: the core image on its own, and compose.yaml under podman-compose.
# Extra arguments go to pytest. DOCMILL_IMAGE_BUILT=1 skips the build: .ci/run builds the
# images in the background while the test suite runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
start=$SECONDS
if [[ ${DOCMILL_IMAGE_BUILT:-} != 1 ]]; then
  scripts/image.sh
  echo "image-test: images built in $((SECONDS - start)) s"
fi
eval "$(scripts/image.sh env)"
status=0
DOCMILL_TEST_IMAGE=1 .venv/bin/python -m pytest tests/image "$@" || status=$?
echo "image-test: done in $((SECONDS - start)) s"
exit $status
