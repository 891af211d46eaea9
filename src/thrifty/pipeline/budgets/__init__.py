"""Budgets and plans, in one place: the engine that reserves and settles (``engine``), its step
(``step``), the most a call can cost (``estimate``), refusals (``refusal``) and what a budget
stands at (``status``). The counters' stores are ``thrifty.stores.budgets``; the pure money and
window math, ``thrifty.core.budgets``."""
