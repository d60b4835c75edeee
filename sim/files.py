"""Atomic file writes for the simulator's outputs: the contract's writers (a temporary sibling renamed into place)."""
from contract.io import write_json_atomic, write_text_atomic

__all__ = ["write_json_atomic", "write_text_atomic"]
