"""The HTTP gateway face: OpenAI- and Anthropic-compatible endpoints over the pipeline."""
