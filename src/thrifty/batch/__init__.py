"""Batch APIs at the providers' batch prices: OpenAI-compatible files and batches through the
gateway, every line validated, cached, budgeted, priced at batch rates and recorded once."""
