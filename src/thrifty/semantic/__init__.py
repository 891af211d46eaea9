"""The semantic response cache: reuse an answer for a paraphrased question, and refuse near misses.

Modules (import what you use; nothing here loads a model or opens a connection at import):

- ``embedder``: ``Embedder`` protocol, ``OnnxEmbedder`` (int8 all-MiniLM-L6-v2 from PyPI packages),
  ``ProviderEmbedder`` (an OpenAI-compatible ``/embeddings`` endpoint);
- ``guard``: ``near_miss(a, b)``, the rules that veto negations, changed numbers, dates, units,
  names and opposite actions;
- ``verifier``: the second check of each candidate (a small shipped pair classifier);
- ``index``: ``VectorIndex`` protocol and ``LocalIndex`` (exact, then usearch HNSW; persisted);
  ``pgvector``: ``PgVectorIndex`` on PostgreSQL;
- ``matcher``: ``SemanticMatcher.decide`` (threshold, guard, verifier), ``context_key``,
  ``compared_text``;
- ``calibration`` and ``nearmiss``: labelled pairs, splits, precision/recall, near-miss pairs.
"""
