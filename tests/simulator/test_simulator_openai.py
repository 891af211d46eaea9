"""The simulator's OpenAI face, driven by the official ``openai`` SDK over real HTTP."""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

from thrifty.core.tokens.counter import TokenCounter
from thrifty.simulator import BackgroundSimulator, SimulatorConfig
from thrifty.wire.openai_chat import parse_openai_request

MODEL = "gpt-4o-mini"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 3, "maximum": 10},
                "hourly": {"type": "boolean"},
                "note": {"type": "string"},
            },
            "required": ["city", "unit", "days", "hourly"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="module")
def server(counter: TokenCounter) -> Iterator[BackgroundSimulator]:
    with BackgroundSimulator(counter=counter) as running:
        yield running


@pytest.fixture
def client(server: BackgroundSimulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


def raw_post(url: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def test_chat_usage_is_exact(client: openai.OpenAI, counter: TokenCounter) -> None:
    messages = ask("Tell me about token counting.")
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    content = choice.message.content
    assert content
    usage = completion.usage
    assert usage is not None
    expected_prompt = counter.count_request(parse_openai_request({"model": MODEL, "messages": messages})).input_tokens
    assert usage.prompt_tokens == expected_prompt
    assert usage.completion_tokens == len(counter.encoding_for(MODEL).encode(content))
    assert usage.completion_tokens == len(counter.encoding_for("gpt-4").encode(content))
    assert 20 <= usage.completion_tokens <= 200
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    headers = raw.headers
    assert headers["x-request-id"].startswith("req_")
    assert int(headers["x-ratelimit-remaining-requests"]) < int(headers["x-ratelimit-limit-requests"])
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert "x-ratelimit-remaining-tokens" in headers


def test_same_request_same_answer_streamed_or_not(client: openai.OpenAI) -> None:
    messages = ask("Determinism, please.")
    first = client.chat.completions.create(model=MODEL, messages=messages)
    second = client.chat.completions.create(model=MODEL, messages=messages)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id != second.id
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == first.choices[0].message.content
    other = client.chat.completions.create(model=MODEL, messages=ask("Something else entirely."))
    assert other.choices[0].message.content != first.choices[0].message.content


def test_stream_without_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=ask("stream it"), stream=True))
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])
    assert len({chunk.id for chunk in chunks}) == 1


def test_stream_with_usage_sends_it_last(client: openai.OpenAI, server: BackgroundSimulator) -> None:
    messages = ask("stream with usage")
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert all(chunk.usage is None for chunk in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    content_chunks = [c for c in chunks[:-1] if c.choices[0].delta.content]
    assert last.usage.completion_tokens == len(content_chunks)  # one token a chunk
    plain = client.chat.completions.create(model=MODEL, messages=messages)
    assert text == plain.choices[0].message.content
    assert plain.usage is not None
    assert last.usage.prompt_tokens == plain.usage.prompt_tokens
    # On the wire: the usage chunk is the last event before [DONE], and carries "choices": [].
    status, headers, body = raw_post(
        server.url,
        "/v1/chat/completions",
        {"model": MODEL, "messages": messages, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = [e for e in body.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    usage_event = json.loads(events[-2].removeprefix("data: "))
    assert usage_event["choices"] == []
    assert usage_event["usage"]["total_tokens"] == plain.usage.total_tokens
    assert json.loads(events[0].removeprefix("data: "))["usage"] is None


def test_n_choices(client: openai.OpenAI, counter: TokenCounter) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=ask("two answers"), n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    texts = [c.message.content or "" for c in completion.choices]
    assert texts[0] != texts[1]
    encoding = counter.encoding_for(MODEL)
    assert completion.usage is not None
    assert completion.usage.completion_tokens == sum(len(encoding.encode(t)) for t in texts)
    stream = client.chat.completions.create(model=MODEL, messages=ask("two answers"), n=2, stream=True)
    streamed = ["", ""]
    for chunk in stream:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == texts


def test_max_tokens_is_honoured_exactly(client: openai.OpenAI, counter: TokenCounter) -> None:
    messages = ask("a long answer")
    full = client.chat.completions.create(model=MODEL, messages=messages)
    full_text = full.choices[0].message.content or ""
    for field in ("max_tokens", "max_completion_tokens"):
        cut = client.chat.completions.create(model=MODEL, messages=messages, **{field: 7})
        text = cut.choices[0].message.content
        assert cut.choices[0].finish_reason == "length"
        assert cut.usage.completion_tokens == 7
        assert len(counter.encoding_for(MODEL).encode(text)) == 7
        assert full_text.startswith(text)
    roomy = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4000)
    assert roomy.choices[0].finish_reason == "stop"
    assert roomy.choices[0].message.content == full_text


def test_stop_sequence(client: openai.OpenAI, counter: TokenCounter) -> None:
    messages = ask("stop somewhere")
    full = (client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content) or ""
    words = full.split(" ")
    stop = " " + words[len(words) // 2]
    cut = client.chat.completions.create(model=MODEL, messages=messages, stop=[stop, "zzz-never"])
    text = cut.choices[0].message.content or ""
    assert cut.choices[0].finish_reason == "stop"
    assert text == full[: full.index(stop)]
    assert cut.usage is not None
    assert cut.usage.completion_tokens == len(counter.encoding_for(MODEL).encode(text))


def _check_weather_arguments(arguments: str) -> dict[str, Any]:
    args = json.loads(arguments)
    assert isinstance(args["city"], str)
    assert args["city"]
    assert args["unit"] in ("celsius", "fahrenheit")
    assert isinstance(args["days"], int)
    assert 3 <= args["days"] <= 10
    assert args["hourly"] is True
    assert "note" not in args  # only required properties are filled
    return args


@pytest.mark.parametrize(
    ("tool_choice", "text", "finish"),
    [
        ("required", "anything", "tool_calls"),
        ({"type": "function", "function": {"name": "get_weather"}}, "anything", "stop"),
        ("auto", "please call get_weather for Oslo", "tool_calls"),
        (None, "please call get_weather for Oslo", "tool_calls"),
    ],
)
def test_tool_calls(client: openai.OpenAI, tool_choice: Any, text: str, finish: str, counter: TokenCounter) -> None:
    extra = {} if tool_choice is None else {"tool_choice": tool_choice}
    completion = client.chat.completions.create(
        model=MODEL,
        messages=ask(text),
        tools=[SEARCH, WEATHER] if tool_choice != "required" else [WEATHER, SEARCH],
        **extra,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == finish
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    _check_weather_arguments(call.function.arguments)
    encoding = counter.encoding_for(MODEL)
    assert completion.usage is not None
    expected = len(encoding.encode("get_weather")) + len(encoding.encode(call.function.arguments))
    assert completion.usage.completion_tokens == expected


def test_tools_not_called_without_reason(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model=MODEL, messages=ask("hello"), tools=[WEATHER])
    assert plain.choices[0].message.tool_calls is None
    assert plain.choices[0].finish_reason == "stop"
    none = client.chat.completions.create(
        model=MODEL,
        messages=ask("get_weather please"),
        tools=[WEATHER],
        tool_choice="none",
    )
    assert none.choices[0].message.tool_calls is None
    after_result = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "get_weather for Oslo"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert after_result.choices[0].message.tool_calls is None
    assert after_result.choices[0].message.content


def test_tool_call_stream(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "messages": ask("x"), "tools": [WEATHER], "tool_choice": "required"}
    whole = client.chat.completions.create(**kwargs)
    arguments = ""
    names = []
    finish = None
    for chunk in client.chat.completions.create(**kwargs, stream=True):
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or ():
            if call.function and call.function.name:
                names.append(call.function.name)
            arguments += (call.function.arguments or "") if call.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_weather"]
    assert finish == "tool_calls"
    calls = whole.choices[0].message.tool_calls
    assert calls is not None
    assert arguments == calls[0].function.arguments
    _check_weather_arguments(arguments)


def test_json_modes(client: openai.OpenAI) -> None:
    as_object = client.chat.completions.create(
        model=MODEL,
        messages=ask("reply in JSON"),
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(as_object.choices[0].message.content or ""), dict)
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 3},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "when": {"type": "string", "format": "date"},
        },
        "required": ["title", "score", "tags", "kind", "when"],
        "additionalProperties": False,
    }
    structured = client.chat.completions.create(
        model=MODEL,
        messages=ask("structured"),
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": True}},
    )
    value = json.loads(structured.choices[0].message.content or "")
    assert set(value) == set(schema["properties"])
    assert len(value["title"]) >= 3
    assert 0 <= value["score"] <= 1
    assert len(value["tags"]) >= 2
    assert value["kind"] == "a"
    assert value["when"] == "2024-01-01"
    cut = client.chat.completions.create(
        model=MODEL,
        messages=ask("reply in JSON"),
        response_format={"type": "json_object"},
        max_tokens=4,
    )
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None
    assert cut.usage.completion_tokens == 4


def test_reasoning_models_spend_hidden_tokens(client: openai.OpenAI, counter: TokenCounter) -> None:
    completion = client.chat.completions.create(model="o3", messages=ask("think"))
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens or 0
    assert reasoning > 0
    visible = len(counter.encoding_for("o3").encode(completion.choices[0].message.content or ""))
    assert usage.completion_tokens == reasoning + visible
    starved = client.chat.completions.create(model="o3", messages=ask("think"), max_completion_tokens=10)
    assert starved.choices[0].message.content == ""
    assert starved.choices[0].finish_reason == "length"
    assert starved.usage is not None
    assert starved.usage.completion_tokens == 10


def test_embeddings_float_and_base64(client: openai.OpenAI, counter: TokenCounter) -> None:
    texts = ["the quick brown fox", "jumps over the lazy dog"]
    default = client.embeddings.create(model="text-embedding-3-small", input=texts)  # SDK asks for base64
    floats = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    for a, b in zip(default.data, floats.data, strict=True):
        assert len(a.embedding) == 1536
        assert a.embedding == pytest.approx(b.embedding, abs=1e-7)
        assert math.fsum(x * x for x in b.embedding) == pytest.approx(1.0, abs=1e-5)
    assert default.data[0].embedding != default.data[1].embedding
    expected = sum(len(counter.encoding_for("text-embedding-3-small").encode(t)) for t in texts)
    assert default.usage.prompt_tokens == expected
    assert default.usage.total_tokens == expected
    again = client.embeddings.create(model="text-embedding-3-small", input=texts[0], encoding_format="float")
    assert again.data[0].embedding == floats.data[0].embedding
    short = client.embeddings.create(
        model="text-embedding-3-large", input=texts[0], dimensions=256, encoding_format="float"
    )
    assert len(short.data[0].embedding) == 256
    # A shortened embedding is the renormalised prefix of the full one.
    full = client.embeddings.create(model="text-embedding-3-large", input=texts[0], encoding_format="float")
    prefix = full.data[0].embedding[:256]
    norm = math.sqrt(math.fsum(x * x for x in prefix))
    assert short.data[0].embedding == pytest.approx([x / norm for x in prefix], abs=1e-6)
    tokens = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2
    assert tokens.usage.prompt_tokens == 5
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    assert "claude-sonnet-4-6" in ids
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_files_and_batches_round_trip(client: openai.OpenAI, counter: TokenCounter) -> None:
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": ask(f"batch question {i}"), "max_tokens": 60},
        }
        for i in range(3)
    ]
    lines.append(
        {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions", "body": {"model": MODEL, "messages": []}}
    )
    payload = "\n".join(json.dumps(line) for line in lines).encode()
    uploaded = client.files.create(file=("requests.jsonl", payload), purpose="batch")
    assert uploaded.id.startswith("file-")
    assert uploaded.bytes == len(payload)
    assert uploaded.filename == "requests.jsonl"
    assert uploaded.purpose == "batch"
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).read() == payload

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.status == "validating"
    assert batch.metadata == {"job": "nightly"}
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 3, 1)
    assert done.output_file_id
    assert done.error_file_id
    assert done.completed_at is not None
    assert done.in_progress_at is not None

    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert [line["custom_id"] for line in output] == ["req-0", "req-1", "req-2"]
    total_in = total_out = 0
    for line, request in zip(output, lines, strict=False):
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"].startswith("req_")
        body = openai.types.chat.ChatCompletion.model_validate(line["response"]["body"])
        expected = counter.count_request(parse_openai_request(request["body"])).input_tokens
        assert body.usage is not None
        assert body.usage.prompt_tokens == expected
        total_in += body.usage.prompt_tokens
        total_out += body.usage.completion_tokens
    assert done.usage is not None
    assert done.usage.input_tokens == total_in
    assert done.usage.output_tokens == total_out
    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert errors[0]["custom_id"] == "bad"
    assert errors[0]["response"]["status_code"] == 400
    assert errors[0]["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert batch.id in [b.id for b in client.batches.list()]


def test_batch_with_invalid_input_fails(client: openai.OpenAI) -> None:
    uploaded = client.files.create(
        file=("bad.jsonl", b'{"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}\n'),
        purpose="batch",
    )
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    assert failed.errors is not None
    assert failed.errors.data
    assert failed.errors.data[0].line == 1
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-missing")


def test_batch_progress_with_a_delay(counter: TokenCounter) -> None:
    with BackgroundSimulator(SimulatorConfig(batch_completion_delay_s=0.3), counter=counter) as slow:
        client = openai.OpenAI(base_url=slow.openai_base_url, api_key="sk-test", max_retries=0)
        line = {"custom_id": "only", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "x"}}
        uploaded = client.files.create(file=("e.jsonl", json.dumps(line).encode()), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
        assert batch.status == "validating"
        assert client.batches.retrieve(batch.id).status == "in_progress"
        time.sleep(0.35)
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert done.output_file_id is not None
        result = json.loads(client.files.content(done.output_file_id).text)
        assert result["response"]["body"]["object"] == "list"


def test_automatic_prompt_caching(client: openai.OpenAI) -> None:
    document = " ".join(f"Clause {i} says the tenant pays on day {i % 28 + 1}." for i in range(160))
    messages = [{"role": "system", "content": document}, {"role": "user", "content": "Summarise clause 7."}]
    first = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5)
    assert first.usage is not None
    prompt = first.usage.prompt_tokens
    assert prompt >= 1024
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    second = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5)
    assert second.usage is not None
    assert second.usage.prompt_tokens == prompt  # prompt_tokens includes the cached tokens
    assert second.usage.prompt_tokens_details.cached_tokens == prompt // 128 * 128
    # The same document with another question shares the prefix only.
    other = [messages[0], {"role": "user", "content": "And clause 9, in detail, with every exception listed?"}]
    third = client.chat.completions.create(model=MODEL, messages=other, max_tokens=5)
    cached = third.usage.prompt_tokens_details.cached_tokens
    assert cached is not None
    assert cached % 128 == 0
    assert 1024 <= cached < third.usage.prompt_tokens
    # Caches are per model.
    elsewhere = client.chat.completions.create(model="gpt-4.1-mini", messages=messages, max_tokens=5)
    assert elsewhere.usage.prompt_tokens_details.cached_tokens == 0
    # Prompts under 1024 tokens are never cached.
    short = ask("a short prompt that is asked twice")
    for _ in range(2):
        small = client.chat.completions.create(model=MODEL, messages=short, max_tokens=5)
        assert small.usage is not None
        assert small.usage.prompt_tokens < 1024
        assert small.usage.prompt_tokens_details.cached_tokens == 0
    # Streaming reports the same cached tokens in its usage chunk.
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == prompt // 128 * 128


def test_azure_deployment_paths(server: BackgroundSimulator) -> None:
    azure = openai.AzureOpenAI(azure_endpoint=server.url, api_key="azure-key", api_version="2024-10-21", max_retries=0)
    completion = azure.chat.completions.create(model="my-deployment", messages=ask("hi"))
    assert completion.model == "my-deployment"
    assert completion.choices[0].message.content
    vectors = azure.embeddings.create(model="embed-deployment", input="hello", encoding_format="float")
    assert len(vectors.data[0].embedding) == 1536


def test_every_shape_validates_against_the_sdk_types(server: BackgroundSimulator) -> None:
    """Stricter than the SDK's own parsing (which does not validate): every field has its type."""
    from openai.types import Batch, CreateEmbeddingResponse, FileObject, Model
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    bodies: list[dict[str, Any]] = [
        {"model": MODEL, "messages": ask("plain"), "n": 2},
        {"model": MODEL, "messages": ask("x"), "tools": [WEATHER], "tool_choice": "required"},
        {"model": MODEL, "messages": ask("x"), "response_format": {"type": "json_object"}, "max_tokens": 3},
        {"model": "o3", "messages": ask("x"), "max_completion_tokens": 5},
    ]
    for body in bodies:
        status, _, raw = raw_post(server.url, "/v1/chat/completions", body)
        assert status == 200
        ChatCompletion.model_validate_json(raw)
        status, _, raw = raw_post(
            server.url, "/v1/chat/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
        )
        events = [e.removeprefix("data: ") for e in raw.decode().split("\n\n") if e]
        assert events.pop() == "[DONE]"
        for event in events:
            ChatCompletionChunk.model_validate_json(event)
    for fmt in ("float", "base64"):
        status, _, raw = raw_post(
            server.url,
            "/v1/embeddings",
            {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": fmt},
        )
        if fmt == "float":
            CreateEmbeddingResponse.model_validate_json(raw)
        else:
            assert all(isinstance(d["embedding"], str) for d in json.loads(raw)["data"])
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": ask("x")},
    }
    uploaded = client.files.with_raw_response.create(file=("a.jsonl", json.dumps(line).encode()), purpose="batch")
    file_object = FileObject.model_validate_json(uploaded.content)
    created = client.batches.with_raw_response.create(
        input_file_id=file_object.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = Batch.model_validate_json(created.content)
    Batch.model_validate_json(client.batches.with_raw_response.retrieve(batch.id).content)
    for model in json.loads(client.models.with_raw_response.list().content)["data"]:
        Model.model_validate(model)
