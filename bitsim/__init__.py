"""bitsim: the command line and the shared table schemas of the 1-bit LLM co-design tool."""
__version__ = "0.1.0"
