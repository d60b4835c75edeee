"""docs/limits.md is generated from the limits the code registers, and is current."""
from __future__ import annotations

import pytest

from bitsim.cli.docs import DEFAULT_FILES, limits_text
from contract.limits import LIMITS, limit, limits_markdown


def test_docs_limits_is_generated_from_the_registered_limits():
    path = DEFAULT_FILES["limits"]
    assert path.read_text() == limits_text(path), "docs/limits.md is stale: run `bitsim docs limits`"


def test_every_workload_bound_of_the_code_appears_in_the_document_with_its_value():
    from contract.vocabulary import MAX_BATCH, MAX_CONTEXT
    text = DEFAULT_FILES["limits"].read_text()
    assert f"| batch | {MAX_BATCH:,} |" in text
    assert f"| decode context | {MAX_CONTEXT:,} (2^20) |" in text
    assert len(LIMITS) >= 10


def test_a_limit_registered_twice_with_another_value_is_refused():
    limit("test only: widgets", 3, unit="", area="workloads", applies_to="tests", why="a test")
    try:
        with pytest.raises(ValueError, match="registered twice"):
            limit("test only: widgets", 4, unit="", area="workloads", applies_to="tests", why="a test")
        assert "| test only: widgets | 3 |" in limits_markdown()
    finally:
        LIMITS.pop("test only: widgets", None)
