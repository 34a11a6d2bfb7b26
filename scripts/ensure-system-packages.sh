#!/usr/bin/env bash
# Installs the Debian packages some tests and benchmarks drive for real, when they are missing:
#   chromium  the browser the UI tests run (playwright-core, executablePath /usr/bin/chromium)
#   nginx     the load balancer of the several-nodes test
#   wrk       the HTTP load generator of the benchmarks
#   redis-server, webdis  Redis 7 and its HTTP front end: peers in the peers benchmark
#   curl      the README's examples, which a test runs as written
# npm test and npm run bench:peers run this first. It never fails the run: when a package cannot
# be installed (no root, no apt, no network), it says so, and the tests that need the package skip
# and say why (the peers benchmark stops and names the missing program).
set -uo pipefail

want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || want+=(nginx)
command -v wrk >/dev/null 2>&1 || want+=(wrk)
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
command -v webdis >/dev/null 2>&1 || want+=(webdis)
command -v curl >/dev/null 2>&1 || want+=(curl)
[ ${#want[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-system-packages: cannot install ${want[*]} (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "ensure-system-packages: installing ${want[*]} with apt-get" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}"; } >/tmp/ensure-system-packages.log 2>&1; then
  echo "ensure-system-packages: apt-get failed (see /tmp/ensure-system-packages.log); tests that need ${want[*]} will skip" >&2
fi
exit 0
