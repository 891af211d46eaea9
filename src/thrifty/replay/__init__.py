"""Know the bill before shipping: captured (or sample) traffic replayed offline through a
candidate config's own pipeline, with the provider replaced by a replay transport
(``replay.runtime``, ``replay.transport``), reported side by side with a baseline
(``replay.report``), and gated in CI (``replay.gate``). Nothing is imported here: the CLI loads
only the parts a command needs."""
