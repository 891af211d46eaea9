"""Wire formats: one module per API, the only place that knows its shapes. ``openai_chat``
(Chat Completions), ``anthropic_messages`` (Messages), ``openai_responses`` (the Responses API,
run as its chat equivalent); ``translate`` converts between the two providers' formats,
``stream_bodies`` accumulates a stream into a body and replays a body as a stream.

Pure, as ``thrifty.core`` is: it imports only core's request, usage and validation modules."""
