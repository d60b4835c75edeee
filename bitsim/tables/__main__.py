"""``python -m bitsim.tables``: print the generated table reference (``docs/tables.md``)."""
from bitsim.tables import reference_markdown

print(reference_markdown())
