"""bitsim: the application layer of the 1-bit LLM co-design tool.

``tables`` (the table contract, a leaf every stage imports), ``experiments`` (study, sweep, ladder,
Pareto), ``report`` (claims, figures, documents) and ``cli`` (the ``bitsim`` command).
"""
__version__ = "0.1.0"
