#!/usr/bin/env bash
# Installs what `make run` / `make test` need and is missing: Debian packages, then the
# virtualenv. Quiet and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(postgresql-15 postgresql-contrib postgresql-client-15 postgresql-15-pgtap
      libtap-parser-sourcehandler-pgtap-perl postgresql-15-plpgsql-check postgresql-15-cron acl
      python3-venv)
# `deps.sh bench` adds what make bench needs
[ "${1:-}" = "bench" ] && pkgs+=(wrk chromium)
# `deps.sh test` adds the browser the web app's tests drive
[ "${1:-}" = "test" ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # the server package must not create and start a cluster of its own
  if [ ! -e /etc/postgresql-common/createcluster.d/50-betjee.conf ]; then
    $sudo mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/50-betjee.conf >/dev/null
  fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "preparing .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 \
    | { grep -v "is ignored: it is neither" || true; }
  touch "$stamp"
fi

scripts/web.sh
