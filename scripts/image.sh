#!/usr/bin/env bash
# Builds Docmill's container images from Debian packages alone, on a fresh Debian machine
# (run as root): no image is pulled from any registry.
#
#   scripts/image.sh [STEP...]     steps: tools base core slim services prune (default: all)
#   scripts/image.sh env           print the podman settings this machine needs (see below)
#
# 1. tools:    podman, mmdebstrap and what they need (apt-get), if missing.
# 2. base:     a minimal Debian rootfs made by mmdebstrap, imported as localhost/docmill-base.
#              The tarball is cached in $DOCMILL_IMAGE_CACHE (default /var/cache/docmill-image)
#              and rebuilt when older than DOCMILL_BASE_MAX_AGE_DAYS (7) or with
#              DOCMILL_IMAGE_REFRESH=1; the images built on it run `apt-get upgrade`.
# 3. core:     the Containerfile: localhost/docmill:VERSION and :latest (API + embedded workers,
#              every engine).
#    slim:     the Containerfile with VARIANT=slim: localhost/docmill-slim:VERSION and :latest,
#              without LibreOffice and Chromium.
# 4. services: containers/*.Containerfile: PostgreSQL, Redis and SeaweedFS (S3) images for
#              compose.yaml, from the same base.
# 5. prune:    removes the images earlier builds left unnamed (the named ones keep the cache).
#
# Some sandboxes refuse what podman does by default (raising RLIMIT_NOFILE/NPROC without
# CAP_SYS_RESOURCE; crun on hybrid cgroups). The first run probes a trivial container and, if it
# fails, writes $DOCMILL_IMAGE_CACHE/containers.conf (runc, rlimits no higher than this
# machine's) and uses it through CONTAINERS_CONF; `scripts/image.sh env` prints the export.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${DOCMILL_IMAGE_CACHE:-/var/cache/docmill-image}
SUITE=${DOCMILL_IMAGE_SUITE:-bookworm}
BASE_IMAGE=localhost/docmill-base:$SUITE
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
IMAGE=${DOCMILL_IMAGE:-localhost/docmill}
MAX_AGE_DAYS=${DOCMILL_BASE_MAX_AGE_DAYS:-7}

log() { echo "image: $*" >&2; }

SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"

tools() {
  local need=() pkg
  for pkg in podman mmdebstrap runc uidmap containernetworking-plugins \
             golang-github-containernetworking-plugin-dnsname iptables; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  if (( ${#need[@]} )); then
    log "installing ${need[*]}"
    # one update, unless the package lists are fresh (scripts/setup.sh may just have run it)
    [[ -n $(find /var/lib/apt/lists -maxdepth 0 -mmin -60 2>/dev/null) ]] || $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${need[@]}" >/dev/null
  fi
}

# --- podman settings this machine needs ------------------------------------------------------

podman_env() {
  local conf=$CACHE/containers.conf
  if [[ -f $CACHE/containers.conf.needed ]]; then
    export CONTAINERS_CONF=$conf
  fi
}

probe() {
  # A container that cannot start with the defaults gets runc and this machine's rlimits.
  local out
  if out=$(env -u CONTAINERS_CONF podman run --rm --network none "$BASE_IMAGE" true 2>&1); then
    rm -f "$CACHE/containers.conf.needed"
    unset CONTAINERS_CONF
    return
  fi
  log "podman's defaults fail here: ${out##*Error: }"
  local nofile nproc
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
  # runc sets the rlimits from inside the container's user and pid setup; values close to the
  # hard limit were refused on the sandbox this was written on, half of it is accepted
  [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
  cat > "$CACHE/containers.conf" <<EOF
# written by scripts/image.sh: podman's defaults did not work on this machine
# (${out##*Error: })
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF=$CACHE/containers.conf
  if out=$(podman run --rm --network none "$BASE_IMAGE" true 2>&1); then
    touch "$CACHE/containers.conf.needed"
    log "using $CONTAINERS_CONF (runc, nofile=$nofile, nproc=$nproc)"
  else
    log "containers cannot run on this machine: $out"
    exit 1
  fi
}

# --- the base rootfs -------------------------------------------------------------------------

base() {
  local tar=$CACHE/base-$SUITE.tar
  local fresh=""
  if [[ -n ${DOCMILL_IMAGE_REFRESH:-} || ! -f $tar ]] || \
     [[ -n $(find "$tar" -mtime "+$MAX_AGE_DAYS" 2>/dev/null) ]]; then
    log "building the $SUITE rootfs with mmdebstrap"
    # minbase, no recommends, no documentation, manuals or translations in any later layer
    # (the dpkg excludes stay in the rootfs); apt lists are dropped by every layer that
    # fetched them
    mmdebstrap --variant=minbase --mode=root --format=tar --include=ca-certificates \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
      --dpkgopt='path-exclude=/usr/share/lintian/*' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      "$SUITE" "$tar.new" >/dev/null 2>"$CACHE/mmdebstrap.log" \
      || { tail -20 "$CACHE/mmdebstrap.log" >&2; exit 1; }
    mv "$tar.new" "$tar"
    fresh=1
  fi
  if [[ -n $fresh ]] || ! podman image exists "$BASE_IMAGE"; then
    log "importing $tar as $BASE_IMAGE"
    podman import --quiet --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
      "$tar" "$BASE_IMAGE" >/dev/null
  fi
  probe
}

# --- Docmill's images ------------------------------------------------------------------------

build() {  # build FILE [--target STAGE] [--arg NAME=VALUE] TAG...
  local file=$1; shift
  local tags=()
  if [[ ${1:-} == --target ]]; then tags+=(--target "$2"); shift 2; fi
  if [[ ${1:-} == --arg ]]; then tags+=(--build-arg "$2"); shift 2; fi
  local tag
  for tag in "$@"; do tags+=(--tag "$tag"); done
  # --format docker: HEALTHCHECK is not part of the OCI image format. The host's CA bundle is
  # mounted into RUN steps (not copied into the image) so that HTTPS through an intercepting
  # proxy works; --network host because the build fetches Debian and Python packages.
  podman build --format docker --network host --build-arg "BASE=$BASE_IMAGE" \
    --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro \
    --file "$file" "${tags[@]}" . >&2
}

core() {
  log "building $IMAGE:$VERSION"
  # the build stage gets a name of its own, so that pruning the images an earlier build left
  # unnamed keeps the layers of the Python dependencies cached
  build Containerfile --target venv "$IMAGE-deps:latest" >/dev/null
  build Containerfile "$IMAGE:$VERSION" "$IMAGE:latest"
  log "$IMAGE:$VERSION is $(podman image inspect --format '{{.Size}}' "$IMAGE:$VERSION" \
    | awk '{printf "%.0f MB", $1/1e6}')"
}

slim() {
  log "building $IMAGE-slim:$VERSION"
  build Containerfile --arg VARIANT=slim "$IMAGE-slim:$VERSION" "$IMAGE-slim:latest"
  log "$IMAGE-slim:$VERSION is $(podman image inspect --format '{{.Size}}' "$IMAGE-slim:$VERSION" \
    | awk '{printf "%.0f MB", $1/1e6}')"
}

services() {
  local name
  for name in postgres redis seaweedfs; do
    log "building localhost/docmill-$name"
    build "containers/$name.Containerfile" "localhost/docmill-$name:latest"
  done
}

prune() {
  # images replaced by this build (unnamed now and used by no container); the layers of the
  # named images, the build stage's included, stay as the cache of the next build
  podman image prune -f >/dev/null
}

podman_env
if [[ ${1:-} == env ]]; then  # reads only: safe for any user, creates nothing
  [[ -n ${CONTAINERS_CONF:-} ]] && echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
  exit 0
fi
mkdir -p "$CACHE"
steps=("$@"); (( ${#steps[@]} )) || steps=(tools base core slim services prune)
for step in "${steps[@]}"; do
  case $step in
    tools|base|core|slim|services|prune) "$step" ;;
    *) echo "unknown step: $step (tools base core slim services prune env)" >&2; exit 2 ;;
  esac
done
