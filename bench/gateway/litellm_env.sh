#!/usr/bin/env bash
# A throwaway environment for the LiteLLM proxy baseline, outside the repository.
#
#   bash bench/gateway/litellm_env.sh            # creates /tmp/thrifty-bench-litellm (idempotent)
#   LITELLM_ENV=/some/dir bash bench/gateway/litellm_env.sh
#
# litellm[proxy]==1.109.1 only resolves here with certifi and litellm-proxy-extras overridden to the
# newest versions the registry has (looked up below with `pip index versions`). opentelemetry-sdk is
# added because without it LiteLLM retries a failing import on every request (~10 ms each): we want
# to measure LiteLLM at its best.
set -euo pipefail
export LITELLM_LOCAL_MODEL_COST_MAP=True  # never fetch the cost map from the network

ENV_DIR="${LITELLM_ENV:-/tmp/thrifty-bench-litellm}"
LITELLM_VERSION="1.109.1"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
UV="${UV:-$REPO/.venv/bin/uv}"
if [ ! -x "$UV" ]; then
    "$REPO/.venv/bin/python" -m pip install --quiet uv
fi

if [ -x "$ENV_DIR/bin/litellm" ] && "$ENV_DIR/bin/python" -c "import opentelemetry.sdk" 2>/dev/null; then
    echo "LiteLLM environment ready: $ENV_DIR"
    exit 0
fi

newest() {  # newest version of a package on the registry
    python3 -m pip index versions "$1" 2>/dev/null | sed -n "s/^$1 (\(.*\))$/\1/p" | head -1
}
CERTIFI="$(newest certifi)"
EXTRAS="$(newest litellm-proxy-extras)"
if [ -z "$CERTIFI" ] || [ -z "$EXTRAS" ]; then
    echo "could not look up the newest certifi / litellm-proxy-extras" >&2
    exit 1
fi
echo "overrides: certifi==$CERTIFI litellm-proxy-extras==$EXTRAS"

OVERRIDES="$(mktemp)"
trap 'rm -f "$OVERRIDES"' EXIT
printf 'certifi==%s\nlitellm-proxy-extras==%s\n' "$CERTIFI" "$EXTRAS" >"$OVERRIDES"

"$UV" venv --quiet --python "$(command -v python3)" "$ENV_DIR"
"$UV" pip install --python "$ENV_DIR/bin/python" --override "$OVERRIDES" \
    "litellm[proxy]==$LITELLM_VERSION" opentelemetry-sdk
"$ENV_DIR/bin/python" -c "import litellm, opentelemetry.sdk; print('LiteLLM environment ready:', '$ENV_DIR')"
