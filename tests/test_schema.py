"""The shared table schemas: round trips keep data and metadata; bad tables are refused by name."""
import pandas as pd
import pytest

from contract import OP_TRACE, describe, read_table, validate, write_table


def _op_trace_row(**over):
    row = {c.name: {"int": 1, "float": 0.5, "str": "x", "bool": True}[c.kind] for c in OP_TRACE}
    row.update(over)
    return row


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_keeps_rows_and_metadata(tmp_path, suffix):
    df = pd.DataFrame([_op_trace_row(op="q_proj", M=3), _op_trace_row(op="k_proj", M=7)])
    meta = {"preset": "tiny", "datapath": "a4.8", "context": 16}
    path = write_table(df, tmp_path / f"t{suffix}", "op_trace", meta)
    back = read_table(path, "op_trace")
    assert back["op"].tolist() == ["q_proj", "k_proj"]
    assert back["M"].tolist() == [3, 7]
    assert back.attrs["preset"] == "tiny" and back.attrs["context"] == 16
    assert back.attrs["schema"] == "op_trace"


def test_missing_column_is_named():
    df = pd.DataFrame([_op_trace_row()]).drop(columns=["sparsity"])
    with pytest.raises(ValueError, match="sparsity"):
        validate(df, "op_trace")


def test_wrong_column_type_is_named():
    df = pd.DataFrame([_op_trace_row(M="three")])
    with pytest.raises(ValueError, match="M"):
        validate(df, "op_trace")


def test_unknown_schema_and_suffix_are_refused(tmp_path):
    df = pd.DataFrame([_op_trace_row()])
    with pytest.raises(ValueError, match="unknown schema"):
        validate(df, "nope")
    with pytest.raises(ValueError, match=".parquet or .csv"):
        write_table(df, tmp_path / "t.json", "op_trace")


def test_describe_lists_every_column():
    text = describe("op_trace")
    assert all(f"| {c.name} |" in text for c in OP_TRACE)


def test_csv_keeps_version_strings_as_strings(tmp_path):
    from contract import MEASURED_TRACE
    row = {c.name: {"int": 1, "float": 0.5, "str": "x", "bool": True}[c.kind] for c in MEASURED_TRACE}
    row.update(cuda="13.0", torch="2.11", date="2026-11-23")
    path = write_table(pd.DataFrame([row]), tmp_path / "m.csv", "measured_trace")
    back = read_table(path, "measured_trace")
    assert back.loc[0, "cuda"] == "13.0" and back.loc[0, "torch"] == "2.11"


def test_docs_table_reference_is_generated_from_the_contract():
    from pathlib import Path

    import bitsim.experiments  # noqa: F401  the application registers its own tables
    import bitsim.report  # noqa: F401
    from contract import reference_markdown
    doc = Path(__file__).resolve().parents[1] / "docs" / "tables.md"
    assert doc.read_text().strip() == reference_markdown().strip(), \
        "docs/tables.md is stale: run `bitsim docs tables`"


def test_write_table_is_atomic_and_leaves_no_partial_file(tmp_path):
    import pandas as pd

    from contract import SCHEMAS
    good = tmp_path / "t.csv"
    df = pd.DataFrame({c.name: pd.Series([], dtype="object") for c in SCHEMAS["accelerator_ceilings"]})
    write_table(pd.DataFrame({"accelerator": ["x"], "precision": ["ternaryxint8"], "peak_ops_s": [1.0],
                              "bandwidth_bytes_s": [2.0]}), good, "accelerator_ceilings")
    before = good.read_bytes()
    with pytest.raises(ValueError, match="missing columns"):
        write_table(df.drop(columns=["precision"]), good, "accelerator_ceilings")
    assert good.read_bytes() == before          # a failed write leaves the old file as it was
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # and no temporary sibling behind


def test_every_registered_table_has_documented_unique_columns():
    from contract import SCHEMAS
    for name, cols in SCHEMAS.items():
        names = [c.name for c in cols]
        assert len(set(names)) == len(names), name
        assert all(c.doc for c in cols), name
