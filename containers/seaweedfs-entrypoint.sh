#!/bin/sh
# One-process SeaweedFS (master, volume, filer, S3 gateway on :8333) storing in /data.
set -eu
config=""
if [ -n "${S3_ACCESS_KEY:-}" ] && [ -n "${S3_SECRET_KEY:-}" ]; then
  config=/tmp/s3.json
  cat > "$config" <<JSON
{"identities": [{"name": "docmill", "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
fi
exec weed server -dir=/data -ip.bind=0.0.0.0 -master.telemetry=false -volume.max=${SEAWEEDFS_VOLUME_MAX:-50} \
  -s3 -s3.port=8333 -s3.port.iceberg=0 -s3.port.lance=0 ${config:+-s3.config=$config} "$@"
