#!/usr/bin/env bash
# A local S3 server (moto) on 127.0.0.1 for trying raystack by hand; see local_s3.py beside
# this file for the options. It prints the environment to point raystack at it:
#
#   infra/local-s3/run.sh --port 5000 --bucket cams --bucket store --upload ./videos s3://cams/
#   # in another shell:
#   export AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=testing \
#          AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
#   raystack scan s3://cams/ --checkpoint fp.pt --store s3://store/runs
#
# Uses the project venv (moto[server] comes with the `test` extra); PYTHON overrides it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON=${PYTHON:-$root/.venv/bin/python}
if [[ ! -x $PYTHON ]]; then
    echo "run.sh: no python at $PYTHON; run 'make install' first or set PYTHON=" >&2
    exit 1
fi
exec "$PYTHON" "$root/infra/local-s3/local_s3.py" "$@"
