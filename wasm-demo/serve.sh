#!/usr/bin/env bash
# Builds the demo page, then serves wasm-demo/dist/ on 127.0.0.1 (port 8080, or the one
# given) and prints its URL. Ctrl-C stops it.
#   wasm-demo/serve.sh [PORT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-8080}"
case "$port" in
    '' | *[!0-9]*) echo "usage: wasm-demo/serve.sh [PORT]" >&2; exit 2 ;;
esac
"$here/build.sh"
echo
echo "The simulator page: http://127.0.0.1:$port/"
echo "A running network, live: http://127.0.0.1:$port/?live=ws://localhost:4001"
echo "(Ctrl-C to stop)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$here/dist"
