"""bitsim: the application layer of the 1-bit LLM co-design tool.

``experiments`` (study, sweep, ladder, Pareto), ``report`` (claims, figures, documents) and ``cli``
(the ``bitsim`` command). The table contract every stage shares is the top-level package ``contract``.
This file stays light: ``bitsim --help`` imports it.
"""
__version__ = "0.1.0"
