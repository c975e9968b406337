#!/usr/bin/env bash
# The web app (web/): its npm packages, pinned by web/package-lock.json, and its bundle
# (web/dist/app.js, built by esbuild). Quiet and quick when both are up to date.
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null; then
  echo "installing Debian packages: nodejs npm"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing the web app's npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -f dist/app.js ] || [ -n "$(find src package-lock.json -newer dist/app.js -print -quit)" ]; then
  node_modules/.bin/esbuild src/main.js --bundle --format=esm --target=es2020 --minify --sourcemap \
    --log-level=warning --outfile=dist/app.js
fi
