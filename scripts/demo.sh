#!/usr/bin/env bash
# The main job on the embedded default store (a SQLite file under .thrifty/): sets itself up, then
# shows exact counts and prices, a monthly plan, and a simulated day of calls recorded in the
# ledger and reported on. No keys and no network needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
T=.venv/bin/thrifty
run() { printf '\n$ thrifty %s\n' "$*"; "$T" "$@"; }
run count --model gpt-4o examples/cookbook-messages.json
run count --model claude-sonnet-4-5 examples/cookbook-messages.json
run price --model claude-sonnet-4-5 --input-tokens 120000 --cache-read-tokens 100000 --cache-write-tokens 15000 --output-tokens 2000
run price --model gpt-4o --input-tokens 1000000 --output-tokens 100000 --batch
run price --prices examples/prices.yaml --model llama-3.1-70b-local --input-tokens 4000 --output-tokens 500
run estimate --model gpt-4o --model gpt-4o-mini --model claude-haiku-4-5 --input-tokens 800 --output-tokens 300 --requests 100000
run demo --calls 5000
