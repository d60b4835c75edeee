"""The committed trained-model projection sparsity (``reports/data/trained_profile.csv``).

``bitsim train tables`` (``model.training_report``) measures each trained checkpoint on
held-out text and writes one ``trained_profile`` table (``contract/training.py``);
its ``layer == -1`` rows are the per-projection input sparsity over all layers.  Used only
by ``model.trace`` with ``profile="trained"``: the trace then costs what a
``paper-table2`` trace costs (no checkpoint is loaded or run).

Rules
-----
* Runs: the datapath's main runs, named ``<datapath>-s<seed>`` (e.g. ``a4.8-s0``,
  ``a4.8-s1``); ablation runs of the same datapath (``a4.8-int4-all-s0``,
  ``a4.8-no-topk-s0``) are not used.
* Seeds: the mean over the seeds' ``layer == -1`` rows, per projection group.
* Groups: CSV ``qkv/out/up/gate/down`` -> trace groups ``qkv/o/up/gate/down``
  (``model.paper_sparsity.PROJ_GROUP``); ``up`` is the gate-first sparsity, as in
  the paper's Table 2.  ``overall`` and ``gate_out`` are not used.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contract import read_table

# reports/ lives next to model/ in the repository root
TRAINED_PROFILE_PATH = Path(__file__).resolve().parents[1] / "reports" / "data" / "trained_profile.csv"
# trained_profile.csv ``proj`` -> projection group of model.paper_sparsity.PROJ_GROUP
CSV_GROUP = {"qkv": "qkv", "out": "o", "up": "up", "gate": "gate", "down": "down"}


@dataclass(frozen=True, kw_only=True)
class TrainedProfile:
    """Seed-averaged projection sparsity (fractions) of one datapath's trained runs, and where it came from."""
    datapath: str
    sparsity: dict[str, float]          # trace group (qkv, o, up, gate, down) -> fraction
    runs: tuple[str, ...]
    seeds: tuple[int, ...]
    train_steps: tuple[int, ...]
    train_tokens: tuple[int, ...]
    presets: tuple[str, ...]            # model shape(s) the profile was measured on
    heldout_tokens: tuple[int, ...]
    path: Path

    def describe(self) -> str:
        """One line naming file, runs, seeds, step and averaging (for ``stats_detail``)."""
        steps = "/".join(str(s) for s in self.train_steps)
        toks = "/".join(str(t) for t in self.train_tokens)
        held = "/".join(str(h) for h in self.heldout_tokens)
        return (f"trained profile {self.path.parent.parent.name}/{self.path.parent.name}/{self.path.name} "
                f"(runs {', '.join(self.runs)}; seeds {', '.join(str(s) for s in self.seeds)}; "
                f"train step {steps}, {toks} training tokens; {'/'.join(self.presets)} shape; "
                f"{held} held-out tokens per run; layer -1 rows, mean over the seeds)")


def trained_sparsity(datapath: str, path: str | Path | None = None) -> TrainedProfile:
    """The trained profile of ``datapath`` (default file: ``TRAINED_PROFILE_PATH``).

    ``FileNotFoundError`` when the file is missing; ``ValueError`` when it has no main runs for
    ``datapath`` (e.g. ``fp16``: no trained profile is written for it) or is incomplete.
    """
    p = TRAINED_PROFILE_PATH if path is None else Path(path)
    if not p.exists():
        raise FileNotFoundError(f"profile 'trained': the trained profile {p} is missing; it is written by "
                                "`bitsim train tables` (model.training_report) from trained checkpoints")
    df = read_table(p, "trained_profile")
    main = df[(df["datapath"] == datapath) & (df["run"] == datapath + "-s" + df["seed"].astype(str))
              & (df["layer"] == -1)]
    if main.empty:
        have = sorted({str(d) for d, r, s in zip(df["datapath"], df["run"], df["seed"]) if r == f"{d}-s{s}"})
        raise ValueError(f"profile 'trained': no trained profile exists for datapath {datapath!r} in {p.name} "
                         f"(no layer -1 rows of runs '{datapath}-s<seed>'); available datapaths: {have}")
    runs = tuple(sorted(set(main["run"])))
    sp: dict[str, float] = {}
    for proj, grp in CSV_GROUP.items():
        g = main[main["proj"] == proj]
        missing = sorted(set(runs) - set(g["run"]))
        if missing or len(g) != len(runs):
            raise ValueError(f"profile 'trained': {p.name}: proj {proj!r} needs exactly one layer -1 row per run "
                             f"of {datapath}; runs missing it: {missing}, rows: {len(g)}")
        vals = [float(v) for v in g["sparsity"]]
        if not all(0.0 <= v <= 1.0 for v in vals):
            raise ValueError(f"profile 'trained': {p.name}: sparsity of {datapath} proj {proj!r} outside [0, 1]: "
                             f"{vals}")
        sp[grp] = sum(vals) / len(vals)
    return TrainedProfile(
        datapath=datapath, sparsity=sp, runs=runs,
        seeds=tuple(sorted({int(s) for s in main["seed"]})),
        train_steps=tuple(sorted({int(s) for s in main["train_step"]})),
        train_tokens=tuple(sorted({int(t) for t in main["train_tokens"]})),
        presets=tuple(sorted({str(x) for x in main["preset"]})),
        heldout_tokens=tuple(sorted({int(h) for h in main["heldout_tokens"]})), path=p)
