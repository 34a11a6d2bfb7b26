#!/usr/bin/env bash
# Installs the Debian packages some tests and benchmarks drive for real, when they are missing:
#   chromium  the browser the UI tests run (playwright-core, executablePath /usr/bin/chromium)
#   nginx     the load balancer of the several-nodes test
#   wrk       the HTTP load generator of the benchmarks
#   redis-server, webdis  Redis 7 and its HTTP front end: peers in the peers benchmark
#   curl      the README's examples, which a test runs as written
#   prometheus  Prometheus and promtool: a test checks /metrics with promtool, and one scrapes a
#               node with a Prometheus of its own
#   strace    the profile benchmark's system calls per request and futex calls per group commit
# npm test, npm run bench:peers and npm run bench:profile run this first. It never fails the run: when a package cannot
# be installed (no root, no apt, no network), it says so, and the tests that need the package skip
# and say why (the peers benchmark stops and names the missing program).
# The install starts no service: the tests run their own nginx, Redis and Prometheus on ports
# they choose, and a package's daemon (Prometheus on :9090, say) would only take memory.
set -uo pipefail

want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || want+=(nginx)
command -v wrk >/dev/null 2>&1 || want+=(wrk)
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
command -v webdis >/dev/null 2>&1 || want+=(webdis)
command -v curl >/dev/null 2>&1 || want+=(curl)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || want+=(prometheus)
command -v strace >/dev/null 2>&1 || want+=(strace)
[ ${#want[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-system-packages: cannot install ${want[*]} (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "ensure-system-packages: installing ${want[*]} with apt-get" >&2
# invoke-rc.d asks policy-rc.d whether to start a package's service; 101 means no. One is put in
# place for the install only, unless the system has its own (containers often do).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}"; } >/tmp/ensure-system-packages.log 2>&1; then
  echo "ensure-system-packages: apt-get failed (see /tmp/ensure-system-packages.log); tests that need ${want[*]} will skip" >&2
fi
exit 0
