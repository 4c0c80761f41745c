#!/usr/bin/env bash
# Optional Debian packages the test suite uses when present; .ci/run calls this before `npm test`.
# Idempotent: installs only what is missing, and runs `apt-get update` only when it must install.
#
#   docker-compose  test/deploy.test.ts runs `docker-compose config -q` on the compose files
#                   (validation only: no Docker engine is needed, none is started). Installed
#                   without recommends, which would pull in the whole docker.io engine.
#   chromium        test/dashboard.browser.test.ts drives Debian's headless Chromium (playwright-core);
#                   that test fails, saying so, when it is missing.
#   fonts-dejavu-core  Persian glyphs in the dashboard screenshots.
set -euo pipefail

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
  echo "ci-packages: all present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ci-packages: not root, cannot install ${missing[*]} (the tests that use them fail, naming what is missing)"
  exit 0
fi

echo "ci-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "ci-packages: done"
