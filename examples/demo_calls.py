"""A few calls through a running thrifty gateway with the official SDKs, unchanged but for base_url.

Run: .venv/bin/python examples/demo_calls.py [http://127.0.0.1:4000]
"""

from __future__ import annotations

import sys

import anthropic
import openai

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4000"
gpt = openai.OpenAI(base_url=f"{base}/v1", api_key="demo")
claude = anthropic.Anthropic(base_url=base, api_key="demo")
question = [{"role": "user", "content": "In one sentence: why do LLM bills grow?"}]

raw = gpt.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=question, max_tokens=40)
reply = raw.parse()
print(
    f"openai SDK -> gpt-4o-mini: {reply.usage.prompt_tokens} in, {reply.usage.completion_tokens} out, "
    f"cost ${raw.headers['x-thrifty-cost-usd']}"
)

for attempt in ("first", "again"):  # temperature 0: the second is answered by the exact cache, at $0
    raw = gpt.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=question, max_tokens=40, temperature=0
    )
    print(
        f"openai SDK -> gpt-4o-mini at temperature 0 ({attempt}): x-thrifty-cache {raw.headers['x-thrifty-cache']}, "
        f"cost ${raw.headers['x-thrifty-cost-usd']}"
    )

stream = gpt.chat.completions.create(
    model="claude-haiku-4-5", messages=question, max_tokens=40, stream=True, stream_options={"include_usage": True}
)
chunks = list(stream)
print(
    f"openai SDK -> claude-haiku-4-5, streamed and translated: {len(chunks)} chunks, "
    f"{chunks[-1].usage.completion_tokens} output tokens"
)

SYSTEM = [{"type": "text", "text": "You are terse. " * 300, "cache_control": {"type": "ephemeral"}}]


def sonnet_with_cached_system() -> tuple[anthropic.types.Usage, str]:
    raw = claude.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=40, system=SYSTEM, messages=question
    )
    return raw.parse().usage, raw.headers["x-thrifty-cost-usd"]


usage, cost = sonnet_with_cached_system()  # writes the provider's prompt cache
print(
    f"anthropic SDK -> claude-sonnet-4-5 with a cached system prompt: wrote "
    f"{usage.cache_creation_input_tokens} cache tokens, cost ${cost}"
)
usage, cost = sonnet_with_cached_system()  # reads it
print(f"  ... the same again: read {usage.cache_read_input_tokens} cached tokens, cost ${cost}")

with claude.messages.stream(model="gpt-4o", max_tokens=40, messages=question) as streamed:
    final = streamed.get_final_message()
print(f"anthropic SDK -> gpt-4o, streamed and translated: {final.usage.output_tokens} output tokens")

raw = gpt.responses.with_raw_response.create(
    model="claude-haiku-4-5", input="In one sentence: why do LLM bills grow?", max_output_tokens=40
)
response = raw.parse()
print(
    f"openai SDK, Responses API -> claude-haiku-4-5: {response.usage.input_tokens} in, "  # type: ignore[union-attr]
    f"{response.usage.output_tokens} out, cost ${raw.headers['x-thrifty-cost-usd']}"  # type: ignore[union-attr]
)
