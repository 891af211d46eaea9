#!/bin/sh
# A cost gate for any CI (or a git pre-push hook): exit 0 when the candidate's LLM cost per
# session is within 20% of the baseline's, 1 when over (the output says which features and calls
# grew, and by how much), 2 on bad input. No provider is called.
#
#   examples/ci/cost-gate.sh BASELINE_SAMPLE CANDIDATE_SAMPLE [CONFIG]
#
# The samples are JSON lines of chat request bodies (a session per session_id; optional feature,
# call and output_tokens beside the body's fields); CONFIG is the gateway config they are costed
# through (default: each model as itself, at the price book's prices).
set -eu
baseline=${1:?usage: cost-gate.sh BASELINE_SAMPLE CANDIDATE_SAMPLE [CONFIG]}
candidate=${2:?usage: cost-gate.sh BASELINE_SAMPLE CANDIDATE_SAMPLE [CONFIG]}
config=${3:-}
set -- --baseline "$baseline" --candidate "$candidate" --max-increase "${MAX_INCREASE:-20%}" --per session
if [ -n "$config" ]; then
    set -- "$@" --config "$config"
fi
exec thrifty gate "$@"
