#!/bin/sh
# Starts the h2_echo example, runs h2_chromium.mjs against it (both HTTP/2 and HTTP/1.1), stops
# the server. Exit status: that of h2_chromium.mjs. See README.md.
#
#   interop/browser/run.sh [PORT]          (default 9444)
#
# Environment: H2_ECHO_BIN (a built h2_echo binary; default: built with cargo), CARGO_TARGET_DIR,
# PLAYWRIGHT_CORE (path to node_modules/playwright-core if not resolvable), CHROMIUM.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${1:-9444}
if [ -z "${H2_ECHO_BIN:-}" ]; then
    (cd "$root" && cargo build -q -p wsproto-interop --example h2_echo)
    H2_ECHO_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/examples/h2_echo"
fi
log=$(mktemp -t h2_echo.XXXXXX.log)
"$H2_ECHO_BIN" "127.0.0.1:$port" 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT INT TERM
i=0
until grep -q 'listening' "$log"; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { cat "$log"; echo "h2_echo did not start" >&2; exit 1; }
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "h2_echo exited" >&2; exit 1; }
    sleep 0.1
done
echo "h2_echo (pid $server) on port $port, log $log"
status=0
node "$here/h2_chromium.mjs" --url "https://localhost:$port/" --log "$log" || status=$?
exit "$status"
