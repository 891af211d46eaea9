"""OpenAI's Responses API (``POST /v1/responses``, the default of new OpenAI SDK code) on top of
the chat pipeline: a request becomes the equivalent Chat Completions request, which runs through
every step (caches, routing, budgets, the ledger) as any chat call does, and the answer, whole or
streamed, is rendered back as a ``response`` object or its event stream.

So any configured model serves it, Claude included (the chat request is translated as usual), and
its usage, prices and savings are exactly a chat call's. What has no Chat Completions equivalent is
refused with a 400 naming the field: stored state (``previous_response_id``, ``background``,
``conversation``), built-in tools (web search, file search, computer use, ...), and input item types
other than messages, function calls and their outputs.
"""

from thrifty.wire.openai_responses.answers import ResponsesStream, as_responses, chat_to_response
from thrifty.wire.openai_responses.requests import responses_to_chat

__all__ = ["ResponsesStream", "as_responses", "chat_to_response", "responses_to_chat"]
