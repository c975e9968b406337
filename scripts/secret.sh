#!/usr/bin/env bash
# The JWT signing secret: $BETJEE_JWT_SECRET when set, else one generated once for this
# checkout and kept in .state/jwt_secret (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${BETJEE_JWT_SECRET:-}" ]; then echo "$BETJEE_JWT_SECRET"; exit 0; fi
if [ ! -s .state/jwt_secret ]; then
  mkdir -p .state
  (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > .state/jwt_secret)
fi
cat .state/jwt_secret
