"""``thrifty count``: exact OpenAI counts (the cookbook's own examples), flagged estimates for the
others, every input shape, and errors that are one line, exit status 2, never a traceback."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.cli.main import main
from thrifty.core.tokens.counter import TokenCounter

# The OpenAI cookbook, "How to count tokens with tiktoken": the example messages and the
# function-calling example, with the counts the API itself reported for them.
JARGON_MESSAGES: list[dict[str, str]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]
WEATHER_SYSTEM = "You are a helpful assistant that can answer to questions about the weather."
WEATHER_USER = "What's the weather like in San Francisco?"
WEATHER_FUNCTION: dict[str, Any] = {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {
                "type": "string",
                "description": "The unit of temperature to return",
                "enum": ["celsius", "fahrenheit"],
            },
        },
        "required": ["location"],
    },
}
WEATHER_MESSAGES = [{"role": "system", "content": WEATHER_SYSTEM}, {"role": "user", "content": WEATHER_USER}]
WEATHER_REQUEST = {"messages": WEATHER_MESSAGES, "tools": [{"type": "function", "function": WEATHER_FUNCTION}]}

BREAKDOWN_KEYS = {"system", "tools", "history", "last_user_message", "other"}


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


Cli = Callable[..., Run]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    def run(*args: str, stdin: bytes | None = None) -> Run:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return str(path)


def count_json(cli: Cli, tmp_path: Path, model: str, document: object, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = cli("count", "-m", model, "--json", *extra, write(tmp_path, "in.json", document)).json()
    assert set(result["breakdown"]) == BREAKDOWN_KEYS
    assert sum(result["breakdown"].values()) == result["input_tokens"]
    return result


def assert_one_line_error(run: Run, *fragments: str) -> str:
    assert run.code == 2, (run.out, run.err)
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("thrifty")
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def raw_tokens(model: str, text: str) -> int:
    return len(TokenCounter().encoding_for(model).encode_ordinary(text))


# ---------------------------------------------------------------- the cookbook's examples, exactly


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4o", 124), ("gpt-4o-mini", 124), ("gpt-4", 129), ("gpt-3.5-turbo", 129)]
)
def test_cookbook_messages_example_counts_exactly(cli: Cli, tmp_path: Path, model: str, expected: int) -> None:
    result = count_json(cli, tmp_path, model, JARGON_MESSAGES)
    assert result["input_tokens"] == expected
    assert result["approximate"] is False
    assert result["approximate_because"] == []
    assert result["input"] == "messages"
    # Five system messages, then the last user message; no tools, nothing in between.
    assert result["breakdown"]["tools"] == 0
    assert result["breakdown"]["history"] == 0
    last = JARGON_MESSAGES[-1]["content"]
    assert result["breakdown"]["last_user_message"] == 3 + raw_tokens(model, "user") + raw_tokens(model, last)


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4o", 101), ("gpt-4o-mini", 101), ("gpt-4", 105), ("gpt-3.5-turbo", 105)]
)
def test_cookbook_tools_example_counts_exactly(cli: Cli, tmp_path: Path, model: str, expected: int) -> None:
    with_tools = count_json(cli, tmp_path, model, WEATHER_REQUEST)
    assert with_tools["input_tokens"] == expected
    assert with_tools["approximate"] is False
    # What the tool definitions add is exactly what the breakdown attributes to them.
    without_tools = count_json(cli, tmp_path, model, {"messages": WEATHER_MESSAGES})
    assert with_tools["breakdown"]["tools"] == with_tools["input_tokens"] - without_tools["input_tokens"] > 0


def test_encodings_are_the_models_own() -> None:
    assert TokenCounter().encoding_for("gpt-4o").name == "o200k_base"
    assert TokenCounter().encoding_for("gpt-4").name == "cl100k_base"


def test_table_output_shows_the_exact_total(cli: Cli, tmp_path: Path) -> None:
    run = cli("count", "-m", "gpt-4", write(tmp_path, "m.json", JARGON_MESSAGES))
    assert run.code == 0
    assert run.out.splitlines()[0].startswith("gpt-4: 129 input tokens (exact")


# ---------------------------------------------------------------- plain text


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "gpt-3.5-turbo"])
def test_plain_text_counts_the_texts_tokens(cli: Cli, tmp_path: Path, model: str) -> None:
    text = "Héllo, wörld! Ünïcode 日本語のテキスト 🚀\n\n  indented line\twith tab\n<|endoftext|> is just text\n"
    result = count_json(cli, tmp_path, model, text)
    assert result["input"] == "text"
    assert result["input_tokens"] == raw_tokens(model, text) > 0
    assert result["approximate"] is False


def test_format_text_counts_a_json_document_as_its_characters(cli: Cli, tmp_path: Path) -> None:
    text = json.dumps(JARGON_MESSAGES)
    result = count_json(cli, tmp_path, "gpt-4o", text, "--format", "text")
    assert result["input"] == "text"
    assert result["input_tokens"] == raw_tokens("gpt-4o", text)
    assert result["input_tokens"] != 124


def test_broken_json_in_auto_mode_is_counted_as_text_with_a_warning(cli: Cli, tmp_path: Path) -> None:
    text = '[{"role": "user", "content": "hi"'
    run = cli("count", "-m", "gpt-4o", "--json", write(tmp_path, "b.json", text))
    assert run.json()["input_tokens"] == raw_tokens("gpt-4o", text)
    assert "warning" in run.err
    assert "plain text" in run.err


def test_json_scalar_in_auto_mode_is_text(cli: Cli, tmp_path: Path) -> None:
    assert count_json(cli, tmp_path, "gpt-4o", "12345")["input"] == "text"


def test_json_file_with_a_byte_order_mark_is_not_silently_counted_as_text(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "bom.json", b"\xef\xbb\xbf" + json.dumps(JARGON_MESSAGES).encode())
    run = cli("count", "-m", "gpt-4o", "--json", path)
    counted_as_messages = run.code == 0 and json.loads(run.out)["input_tokens"] == 124
    assert counted_as_messages or "json" in run.err.lower()


# ---------------------------------------------------------------- Anthropic-shaped input

ANTHROPIC_TOOL_CONVERSATION: dict[str, Any] = {
    "system": [{"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}}],
    "tools": [
        {
            "name": "get_weather",
            "description": "Get the weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "18C and sunny"}]},
    ],
    "max_tokens": 100,
}


def test_anthropic_shape_counts_like_the_same_openai_request(cli: Cli, tmp_path: Path) -> None:
    anthropic = {
        "system": WEATHER_SYSTEM,
        "messages": [{"role": "user", "content": [{"type": "text", "text": WEATHER_USER}]}],
        "tools": [
            {
                "name": WEATHER_FUNCTION["name"],
                "description": WEATHER_FUNCTION["description"],
                "input_schema": WEATHER_FUNCTION["parameters"],
            }
        ],
    }
    result = count_json(cli, tmp_path, "gpt-4o", anthropic)
    assert result["input_tokens"] == 101  # the cookbook's figure for the OpenAI form of this request
    assert result["approximate"] is False
    assert result["breakdown"]["system"] > 0
    assert result["breakdown"]["tools"] > 0


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-haiku-4-5"])
def test_anthropic_conversation_with_tool_use_is_approximate_for_claude(cli: Cli, tmp_path: Path, model: str) -> None:
    result = count_json(cli, tmp_path, model, ANTHROPIC_TOOL_CONVERSATION)
    assert result["approximate"] is True
    assert result["approximate_because"]
    assert all(isinstance(reason, str) and reason for reason in result["approximate_because"])
    breakdown = result["breakdown"]
    assert breakdown["system"] > 0
    assert breakdown["tools"] > 0
    assert breakdown["history"] > 0  # the first user turn and the assistant's tool call
    assert breakdown["last_user_message"] > 0  # the tool result


def test_tool_calls_make_even_an_openai_count_approximate(cli: Cli, tmp_path: Path) -> None:
    result = count_json(cli, tmp_path, "gpt-4o", ANTHROPIC_TOOL_CONVERSATION)
    assert result["approximate"] is True
    assert any("tool" in reason for reason in result["approximate_because"])


def test_claude_estimate_is_cl100k_scaled_by_1_15_per_category(cli: Cli, tmp_path: Path) -> None:
    exact = count_json(cli, tmp_path, "gpt-4", JARGON_MESSAGES)["breakdown"]  # cl100k_base, same framing
    claude = count_json(cli, tmp_path, "claude-sonnet-4-5", JARGON_MESSAGES)
    assert claude["approximate"] is True
    assert claude["encoding"] == "cl100k_base"
    for key in ("system", "history", "last_user_message"):
        assert claude["breakdown"][key] == math.ceil(exact[key] * Decimal("1.15"))
    assert claude["input_tokens"] > 129


def test_claude_plain_text_is_approximate(cli: Cli, tmp_path: Path) -> None:
    text = "Count me, roughly, please."
    result = count_json(cli, tmp_path, "claude-sonnet-4-5", text)
    assert result["approximate"] is True
    assert result["approximate_because"]
    assert result["input_tokens"] == math.ceil(raw_tokens("claude-sonnet-4-5", text) * Decimal("1.15"))


def test_a_model_known_only_to_the_price_file_can_be_counted(cli: Cli, tmp_path: Path) -> None:
    prices = write(tmp_path, "prices.yaml", "models:\n  - model: acme-llm\n    input_mtok: 1\n    output_mtok: 2\n")
    doc = write(tmp_path, "m.json", JARGON_MESSAGES)
    unpriced = cli("count", "-m", "acme-llm", doc)  # counted without the price file too, with a note
    assert unpriced.code == 0 and "acme-llm" in unpriced.err
    priced = cli("count", "-m", "acme-llm", "--json", "--prices", prices, doc)
    assert priced.err == ""
    result = priced.json()
    assert result["approximate"] is True
    assert result["input_tokens"] == 129  # estimated with cl100k_base and the same framing as gpt-4


# ---------------------------------------------------------------- standard input


def test_dash_reads_standard_input(cli: Cli) -> None:
    result = cli("count", "-m", "gpt-4o", "--json", "-", stdin=json.dumps(JARGON_MESSAGES).encode()).json()
    assert result["input_tokens"] == 124


def test_dash_with_invalid_utf8_on_standard_input(cli: Cli) -> None:
    assert_one_line_error(cli("count", "-m", "gpt-4o", "-", stdin=b"ok \xff\xfe"), "standard input", "UTF-8")


def run_process(*args: str, stdin: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "thrifty.cli.main", *args], input=stdin, capture_output=True, cwd=cwd, check=False
    )


def test_end_to_end_piping_a_request_into_the_command(tmp_path: Path) -> None:
    done = run_process("count", "-m", "gpt-4", "--json", "-", stdin=json.dumps(WEATHER_REQUEST).encode(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["input_tokens"] == 105


def test_end_to_end_error_is_one_line_and_status_2(tmp_path: Path) -> None:
    done = run_process("count", "-m", "gpt-4o", "--format", "json", "-", stdin=b"{nope", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == b""
    assert len(done.stderr.decode().splitlines()) == 1
    assert b"Traceback" not in done.stderr


# ---------------------------------------------------------------- errors


def test_an_unpriced_model_is_counted_with_a_note_naming_close_matches(cli: Cli, tmp_path: Path) -> None:
    # Counting never needs a price (issue 14.6): the count comes out, the note says what is unknown.
    run = cli("count", "-m", "gtp-4o", "--json", write(tmp_path, "t.txt", "hi"))
    assert run.code == 0 and json.loads(run.out)["input_tokens"] > 0
    assert "'gtp-4o'" in run.err and "gpt-4o" in run.err.split("did you mean", 1)[1]
    run = cli(
        "count", "-m", "llama-3.1-70b", "--json", write(tmp_path, "m.json", '[{"role": "user", "content": "hi"}]')
    )
    assert run.code == 0 and json.loads(run.out)["approximate"] is True
    assert "no price is known" in run.err and "counted anyway" in run.err
    # price and estimate still refuse a model they cannot price.
    assert_one_line_error(cli("price", "-m", "claude-sonet-4-5", "--input-tokens", "10"), "claude-sonnet-4-5")


def test_missing_file(cli: Cli, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json")
    assert_one_line_error(cli("count", "-m", "gpt-4o", missing), missing, "no such file")


def test_directory(cli: Cli, tmp_path: Path) -> None:
    assert_one_line_error(cli("count", "-m", "gpt-4o", str(tmp_path)), "directory")


def test_invalid_utf8_file(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.txt", "caf\xe9 na\xefve".encode("latin-1"))
    assert_one_line_error(cli("count", "-m", "gpt-4o", path), path, "UTF-8", "offset 3")


def test_format_json_with_invalid_json(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", '[{"role": "user",\n "content": }]')
    assert_one_line_error(cli("count", "-m", "gpt-4o", "--format", "json", path), "invalid JSON", "line 2")


def test_format_json_with_a_json_scalar(cli: Cli, tmp_path: Path) -> None:
    assert_one_line_error(cli("count", "-m", "gpt-4o", "--format", "json", write(tmp_path, "s.json", '"hi"')))


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        ([{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}], ("messages[1].role", "'robot'")),
        ([{"role": "user", "content": "hi"}, {"role": 5, "content": "x"}], ("messages[1].role", "string")),
        ([{"role": "user", "content": 5}], ("messages[0].content",)),
        ([{"role": "user", "content": "a"}, "not a message"], ("messages[1]", "object")),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}]}, ("messages[0].content[0].text",)),
        ({"messages": WEATHER_MESSAGES, "tools": "get_current_weather"}, ("tools", "array")),
        ({"messages": WEATHER_MESSAGES, "tools": [{"type": "function", "function": {}}]}, ("tools[0].function.name",)),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]},
                ]
            },
            ("messages[1].content[0].id",),
        ),
        ([], ("messages", "at least one")),
        ({"messages": []}, ("messages", "at least one")),
        ({"prompt": "hi"}, ("messages",)),
    ],
)
def test_bad_messages_name_the_path(cli: Cli, tmp_path: Path, document: object, fragments: tuple[str, ...]) -> None:
    path = write(tmp_path, "bad.json", document)
    assert_one_line_error(cli("count", "-m", "gpt-4o", path), *fragments)


def test_error_for_object_without_messages_does_not_repeat_its_prefix(cli: Cli, tmp_path: Path) -> None:
    line = assert_one_line_error(cli("count", "-m", "gpt-4o", write(tmp_path, "o.json", {"prompt": "hi"})))
    assert "input: input:" not in line


def test_missing_model_option(cli: Cli, tmp_path: Path) -> None:
    assert_one_line_error(cli("count", write(tmp_path, "t.txt", "hi")), "--model")
