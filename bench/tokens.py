"""Token counting against raw tiktoken encoding of the same text.

Run: .venv/bin/python bench/tokens.py
Target (issue 2): counting within 1.1x the time of raw tiktoken encoding.
"""

from __future__ import annotations

import inspect
import json
import textwrap

from _util import fmt_time, interleaved
from thrifty.core.messages import ChatRequest, Message, TextPart
from thrifty.core.tokens.counter import TokenCounter


def corpus() -> str:
    """Real English prose and code, available offline: the text of a few standard-library modules."""
    parts = [inspect.getsource(module) for module in (textwrap, json.decoder, json.encoder, inspect)]
    return "\n".join(parts)


def main() -> None:
    counter = TokenCounter()
    text = corpus()
    print(f"{'model':<10}{'text':>10}{'tokens':>9}{'tiktoken encode':>18}{'thrifty count':>16}{'ratio':>8}")
    for model in ("gpt-4o", "gpt-4"):
        encoding = counter.encoding_for(model)
        for size in (400, 8_000, 200_000):
            sample = text[:size]
            tokens = len(encoding.encode(sample))
            calls = max(30, 2_000_000 // size)
            ours, raw, ratio = interleaved(
                lambda s=sample, m=model: counter.count_text(s, m),
                lambda s=sample, e=encoding: e.encode(s),
                calls=calls,
            )
            print(f"{model:<10}{size:>10,}{tokens:>9,}{fmt_time(raw):>18}{fmt_time(ours):>16}{ratio:>8.2f}")
    # A chat request: 20 turns of the same text, framing and breakdown included, against encoding
    # the same text as one string.
    turns = [text[i * 1000 : (i + 1) * 1000] for i in range(20)]
    request = ChatRequest(
        model="gpt-4o",
        messages=tuple(Message("user" if i % 2 == 0 else "assistant", (TextPart(t),)) for i, t in enumerate(turns)),
    )
    joined = "".join(turns)
    encoding = counter.encoding_for("gpt-4o")
    ours, raw, ratio = interleaved(lambda: counter.count_request(request), lambda: encoding.encode(joined), calls=200)
    count = counter.count_request(request).input_tokens
    print(f"{'gpt-4o':<10}{'20 turns':>10}{count:>9,}{fmt_time(raw):>18}{fmt_time(ours):>16}{ratio:>8.2f}")
    print("ratio = thrifty / raw tiktoken on the same text (median of interleaved rounds); target <= 1.10")


if __name__ == "__main__":
    main()
