#!/usr/bin/env bash
# Debian packages some test suites need, installed only when missing (.ci/run calls this if it
# exists). One block per need; append yours below.
set -euo pipefail

need() { # need <command-or-path> <package>…: install the packages unless the first is present
  local probe=$1
  shift
  if command -v "$probe" >/dev/null 2>&1 || [ -e "$probe" ]; then return 0; fi
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Dashboard browser test (test/dashboard.browser.test.ts): headless Chromium, and a font with
# Persian glyphs for its screenshots.
need /usr/bin/chromium chromium
need /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf fonts-dejavu-core
