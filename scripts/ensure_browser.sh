#!/usr/bin/env bash
# Installs what the browser tests (tests/test_browser.py) need when it is missing: Debian's
# chromium and chromium-driver (never a downloaded browser build). Called by `make test`.
# Nothing to do when /usr/bin/chromium and /usr/bin/chromedriver exist. Exit 1, with what to
# do, when they are missing and cannot be installed (no apt-get, or neither root nor sudo).
set -euo pipefail
# the paths tests/test_browser.py uses (overridable only so that a test can check this script)
chromium="${COURSE_CHROMIUM:-/usr/bin/chromium}"
driver="${COURSE_CHROMEDRIVER:-/usr/bin/chromedriver}"
if [ -x "$chromium" ] && [ -x "$driver" ]; then
  exit 0
fi
how="install Debian's chromium and chromium-driver (sudo apt-get install chromium chromium-driver), or run the other tests: make test PYTEST_ARGS='-m \"not browser\"'"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "make test: the browser tests need $chromium and $driver, and this machine has no apt-get: $how" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "make test: the browser tests need $chromium and $driver; installing them needs root: $how" >&2
    exit 1
  fi
fi
echo "installing Debian's chromium + chromium-driver for the browser tests"
log="$(mktemp)"
if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "make test: apt-get install chromium chromium-driver failed (above); $how" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
