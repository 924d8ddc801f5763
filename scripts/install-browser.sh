#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests and the editor benchmark (Playwright drives
# it via executable_path). Does nothing when /usr/bin/chromium is there already.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
