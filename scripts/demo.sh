#!/usr/bin/env bash
# The main job on the embedded default store: sets itself up, starts the gateway in front of the
# simulated upstream (no keys, no network), sends it a few calls with the official SDKs, shows the
# ledger report, and keeps serving on http://127.0.0.1:4000 until Ctrl-C.
# THRIFTY_DEMO_EXIT=1 stops after the report instead; THRIFTY_DEMO_PORT picks another port.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
port=${THRIFTY_DEMO_PORT:-4000}
url="http://127.0.0.1:${port}"
# A busy port would have the demo talk to whatever else answers there: stop at once, and say why.
if ! .venv/bin/python -c "import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
    echo "scripts/demo.sh: port $port is in use; set THRIFTY_DEMO_PORT to a free one" >&2
    exit 1
fi
.venv/bin/thrifty serve --demo --port "$port" &
server=$!
trap 'kill -INT "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
    if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/readyz')" "$url" 2>/dev/null; then
        break
    fi
    kill -0 "$server" 2>/dev/null || { echo "the gateway did not start" >&2; exit 1; }
    sleep 0.2
done
kill -0 "$server" 2>/dev/null || { echo "scripts/demo.sh: the gateway did not start (see above)" >&2; exit 1; }
echo
.venv/bin/python examples/demo_calls.py "$url"
echo
echo "$ thrifty count --model gpt-4o examples/cookbook-messages.json"
.venv/bin/thrifty count --model gpt-4o examples/cookbook-messages.json
echo
echo "$ thrifty report --demo --by model"
sleep 0.3  # the ledger writer batches every 50 ms
.venv/bin/thrifty report --demo --by model
if [ -n "${THRIFTY_DEMO_EXIT:-}" ]; then
    exit 0
fi
echo
echo "The gateway is serving at $url (OpenAI: $url/v1, Anthropic: $url). Ctrl-C stops it."
wait "$server"
