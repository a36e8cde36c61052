#!/usr/bin/env bash
# Runs the Autobahn|Testsuite against wsproto in both roles, through ../shared/autobahn/run.sh.
#
#   scripts/autobahn.sh            # both modes, all 517 cases each
#   scripts/autobahn.sh server     # one mode
#   CASES='1.*,12.1.*' scripts/autobahn.sh
#
# Exits non-zero if any case is not OK (or INFORMATIONAL) in any mode. Reports land in
# target/autobahn/{server,client}/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
kit="${AUTOBAHN_KIT:-../shared/autobahn}"
if [ ! -x "$kit/run.sh" ]; then
  echo "autobahn: kit not found at $kit; see README (Conformance) to run the suite elsewhere" >&2
  exit 2
fi
modes=("${@:-server client}")
# Build first: run.sh waits only a few seconds for the testee to listen.
cargo build --release --example autobahn_server --example autobahn_client
status=0
for mode in ${modes[@]}; do
  start=$(date +%s)
  case "$mode" in
    server) "$kit/run.sh" server 9001 -- target/release/examples/autobahn_server 9001 || status=1 ;;
    client) "$kit/run.sh" client 9002 -- target/release/examples/autobahn_client 9002 || status=1 ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  echo "autobahn $mode: $(( $(date +%s) - start )) s"
done
exit $status
