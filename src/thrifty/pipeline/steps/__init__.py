"""The pipeline's steps, one module each, in the order a call meets them: ``record`` (price and
ledger), ``cache`` (exact), ``semantic``, ``compression`` (and output caps), ``routing``, the
budgets (``thrifty.pipeline.budgets``), ``ratelimit``, ``dispatch`` (the provider); and
``embeddings`` (the embedding cache and dispatcher). The wiring is in ``pipeline.build``."""
