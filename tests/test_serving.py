"""The serving simulator (sim.serving) against hand-computed schedules, closed forms and bad inputs."""
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bitsim.experiments.serving as serving_experiment
from sim.serving import (
    ChipFacts,
    GridCostModel,
    LinearCostModel,
    ParallelConfig,
    SchedulerConfig,
    Targets,
    WorkloadConfig,
    allreduce_seconds,
    attention_pairs,
    chrome_trace,
    generate,
    load_interconnect,
    search_rate,
    serve,
)
from sim.serving.interconnect import InterconnectConfig, allreduce_bytes_moved, transfer_seconds
from sim.serving.metrics import late_attainment, met_targets
from sim.serving.validation import (
    allreduce_checks,
    allreduce_rows,
    fit_oneshot,
    hand_checks,
    iteration_checks,
)
from sim.serving.workload import check_requests, load_requests, trace_statistics

A, B = 0.010, 0.001          # fixed and per-token seconds of the hand cost model


def facts(tp=1, **kw):
    base = dict(name="toy", tp=tp, weight_bytes=1e9, kv_bytes_per_token=1e5, capacity_bytes=10e9,
                area_mm2=100.0, hidden=1024, n_layers=4)
    return ChipFacts(**{**base, **kw})


def linear(tp=1, **kw):
    return LinearCostModel(facts=facts(tp, **kw), fixed_s=A, per_token_s=B, watts=100.0)


def reqs(rows):
    return pd.DataFrame(rows, columns=["arrival_s", "prompt_tokens", "output_tokens"])


# ----------------------------------------------------------------------------- hand-computed schedules
def test_single_request_prefill_then_one_decode_per_token():
    P, O = 100, 5
    res = serve(reqs([(0.0, P, O)]), linear())
    r = res.requests.iloc[0]
    assert r["ttft_s"] == pytest.approx(A + B * P)
    assert r["tpot_s"] == pytest.approx(A + B)
    assert r["e2e_s"] == pytest.approx(A + B * P + (O - 1) * (A + B))
    assert len(res.iterations) == O
    # energy: 100 W x busy time (the hand model's joules)
    assert res.summary["energy_j"].iloc[0] == pytest.approx(100.0 * r["e2e_s"])


def test_deterministic_arrivals_spaced_past_service_do_not_interact():
    P, O, gap = 50, 3, 1.0
    service = A + B * P + (O - 1) * (A + B)
    assert service < gap
    res = serve(reqs([(k * gap, P, O) for k in range(5)]), linear())
    assert np.allclose(res.requests["e2e_s"], service)
    assert np.allclose(res.requests["ttft_s"], A + B * P)


def test_two_requests_fit_exactly_at_capacity_without_preemption():
    # prompt 4 + 5 outputs: KV peaks at 8 tokens = 2 blocks of 4 each; 4 blocks hold both exactly
    sch = SchedulerConfig(block_tokens=4, kv_blocks=4)
    res = serve(reqs([(0.0, 4, 5), (0.0, 4, 5)]), linear(), scheduler=sch)
    assert res.requests["preemptions"].sum() == 0
    assert res.iterations["kv_blocks_used"].max() == 4
    expected = A + 8 * B + 4 * (A + 2 * B)          # one prefill of both, four decodes of two
    assert np.allclose(res.requests["finish_s"], expected)


def test_one_block_short_preempts_the_latest_and_recomputes_it():
    sch = SchedulerConfig(block_tokens=4, kv_blocks=3, preemption="recompute")
    res = serve(reqs([(0.0, 4, 5), (0.0, 4, 5)]), linear(), scheduler=sch)
    r0, r1 = res.requests.iloc[0], res.requests.iloc[1]
    assert (r0["preemptions"], r1["preemptions"]) == (0, 1)
    t_r0 = A + 8 * B + 4 * (A + B)                 # r0 decodes alone after r1 is evicted
    assert r0["finish_s"] == pytest.approx(t_r0)
    # r1 recomputes prompt + its 1 token (5 tokens: 2 blocks) once r0 frees its blocks, then 3 decodes
    assert r1["finish_s"] == pytest.approx(t_r0 + A + 5 * B + 3 * (A + B))
    assert r1["ttft_s"] == pytest.approx(A + 8 * B)   # its first token came from the first prefill


def test_swap_preemption_keeps_the_kv_and_pays_the_host_link():
    sch = SchedulerConfig(block_tokens=4, kv_blocks=3, preemption="swap", swap_gbps=1.0)
    res = serve(reqs([(0.0, 4, 5), (0.0, 4, 5)]), linear(), scheduler=sch)
    assert res.requests["preemptions"].tolist() == [0, 1]
    assert res.iterations["swap_s"].sum() == pytest.approx(2 * 4 * 1e5 / 1e9)   # 1 block out, 1 block in
    assert res.requests["finish_s"].notna().all()


def test_chunked_prefill_splits_a_prompt_by_the_token_budget():
    sch = SchedulerConfig(policy="chunked", token_budget=4)
    res = serve(reqs([(0.0, 10, 2)]), linear(), scheduler=sch)
    assert res.iterations["prefill_tokens"].tolist() == [4, 4, 2, 0]
    r = res.requests.iloc[0]
    assert r["ttft_s"] == pytest.approx(3 * A + 10 * B)
    assert r["e2e_s"] == pytest.approx(3 * A + 10 * B + A + B)


def test_chunked_runs_decodes_first_then_fills_the_budget():
    sch = SchedulerConfig(policy="chunked", token_budget=8)
    res = serve(reqs([(0.0, 4, 4), (0.001, 20, 2)]), linear(), scheduler=sch)
    it = res.iterations
    mixed = it[(it["decode_requests"] > 0) & (it["prefill_tokens"] > 0)]
    assert len(mixed) > 0
    assert (it["decode_requests"] + it["prefill_tokens"] <= 8).all()


def test_prefill_first_runs_a_waiting_prompt_before_decodes():
    res = serve(reqs([(0.0, 4, 10), (0.015, 4, 2)]), linear())
    it = res.iterations
    assert ((it["decode_requests"] > 0) & (it["prefill_tokens"] > 0)).sum() == 0
    # r0's prefill ends at 0.014 and its first decode at 0.025; r1 arrived at 0.015, so it is prefilled next
    assert it["prefill_tokens"].tolist()[:3] == [4, 0, 4]


def test_max_batch_caps_the_running_requests():
    res = serve(reqs([(0.0, 8, 20)] * 10), linear(), scheduler=SchedulerConfig(max_batch=3))
    assert res.iterations["running"].max() <= 3
    assert res.iterations["decode_requests"].max() == 3


def test_a_prompt_larger_than_the_kv_is_rejected_not_hung():
    res = serve(reqs([(0.0, 100, 2), (0.0, 4, 2)]), linear(), scheduler=SchedulerConfig(block_tokens=4, kv_blocks=10))
    assert res.requests["rejected"].tolist() == [True, False]
    assert res.summary["finished"].iloc[0] == 1


def test_tensor_parallel_adds_two_allreduces_per_layer():
    ic = load_interconnect("nvlink4-h100")
    res = serve(reqs([(0.0, 10, 2)]), linear(tp=2), parallel=ParallelConfig(tp=2), interconnect=ic)
    f = facts(2)
    ar = lambda tokens: 2 * f.n_layers * allreduce_seconds(tokens * f.hidden * 2, 2, ic)  # noqa: E731
    assert res.iterations["comm_s"].tolist() == pytest.approx([ar(10), ar(1)])
    assert res.requests["e2e_s"].iloc[0] == pytest.approx(A + 10 * B + ar(10) + A + B + ar(1))


def test_host_overhead_is_paid_once_per_iteration_whatever_the_tensor_parallel_degree():
    H, S = 0.004, 0.0005
    ic = load_interconnect("nvlink4-h100")
    for tp in (1, 2):
        plain = serve(reqs([(0.0, 10, 3)] * 2), linear(tp=tp), parallel=ParallelConfig(tp=tp), interconnect=ic)
        host = serve(reqs([(0.0, 10, 3)] * 2), linear(tp=tp), SchedulerConfig(host_overhead_s=H,
                     host_overhead_s_per_seq=S), parallel=ParallelConfig(tp=tp), interconnect=ic)
        # one prefill and two decode iterations of both requests, each H + 2 S longer; the chips' own time and
        # energy unchanged
        assert host.requests["e2e_s"].iloc[0] == pytest.approx(plain.requests["e2e_s"].iloc[0] + 3 * (H + 2 * S))
        assert host.iterations["host_s"].tolist() == pytest.approx([H + 2 * S] * 3)
        assert host.iterations["compute_s"].tolist() == pytest.approx(plain.iterations["compute_s"].tolist())
        assert host.summary["energy_j"].iloc[0] == pytest.approx(plain.summary["energy_j"].iloc[0])


def test_inter_token_latency_counts_every_gap_between_a_requests_tokens():
    # prefill r1 [0, 20 ms], decode r1 [20, 31], prefill r2 (arrived at 25 ms) [31, 61], decode both [61, 73],
    # decode r1 [73, 84]: r1's gaps 11, 42, 11 ms (the prefill of r2 stalls it), r2's gap 12 ms
    res = serve(reqs([(0.0, 10, 4), (0.025, 20, 2)]), linear())
    gaps = np.array([A + B, (A + 20 * B) + (A + 2 * B), A + B, A + 2 * B])
    for q in (50, 90, 99):
        assert res.summary[f"itl_p{q}_s"].iloc[0] == pytest.approx(np.percentile(gaps, q))


def test_pipeline_of_two_stages_one_microbatch_adds_the_handoff():
    ic = load_interconnect("nvlink4-h100")
    res = serve(reqs([(0.0, 10, 2)]), linear(), parallel=ParallelConfig(pp=2), interconnect=ic)
    hand = transfer_seconds(1 * 1024 * 2, ic)
    assert res.iterations["end_s"].diff().iloc[1] == pytest.approx(A + B + hand)


def test_disaggregated_moves_the_kv_then_decodes_elsewhere():
    ic = load_interconnect("nvlink4-h100")
    P, O = 40, 4
    res = serve(reqs([(0.0, P, O)]), linear(), parallel=ParallelConfig(prefill_instances=1, decode_instances=1),
                interconnect=ic)
    xfer = transfer_seconds(P * 1e5, ic)
    r = res.requests.iloc[0]
    assert r["instance"] == 1
    assert r["ttft_s"] == pytest.approx(A + B * P)
    assert r["e2e_s"] == pytest.approx(A + B * P + xfer + (O - 1) * (A + B))
    assert sorted(res.iterations["instance"].unique()) == [0, 1]


def test_replicas_split_the_load():
    res = serve(reqs([(0.0, 8, 4)] * 4), linear(), parallel=ParallelConfig(replicas=2))
    assert sorted(res.requests["instance"].value_counts().tolist()) == [2, 2]
    assert res.summary["chips"].iloc[0] == 2


def test_kv_capacity_comes_from_memory_minus_weights():
    # (10 GB x 0.9 - 1 GB) / (16 tokens x 1e5 B) = 5000 blocks
    res = serve(reqs([(0.0, 8, 2)]), linear())
    assert res.iterations["kv_blocks_total"].iloc[0] == 5000
    with pytest.raises(ValueError, match="does not fit"):
        serve(reqs([(0.0, 8, 2)]), linear(weight_bytes=20e9))


# ----------------------------------------------------------------------------- metrics and the rate search
def test_goodput_counts_requests_meeting_both_targets():
    res = serve(reqs([(0.0, 100, 5)]), linear(), targets=Targets(ttft_s=A + B * 100 + 1e-9, tpot_s=A + B + 1e-9))
    assert res.summary["attainment"].iloc[0] == 1.0
    res = serve(reqs([(0.0, 100, 5)]), linear(), targets=Targets(ttft_s=A + B * 100 - 1e-6, tpot_s=1.0))
    assert res.summary["attainment"].iloc[0] == 0.0


def test_rate_search_brackets_the_knee():
    w = WorkloadConfig(requests=300, lengths="fixed", prompt_tokens=64, output_tokens=16, seed=3)
    best, tried = search_rate(w, linear(), targets=Targets(ttft_s=0.5, tpot_s=0.05), lo=0.1, hi=500, rel_tol=0.1)
    assert 0.1 < best < 500
    ok = tried[tried["rate"] <= best]["attainment"]
    assert (ok >= 0.9).all()
    assert (tried[tried["rate"] > best * 1.1]["attainment"] < 0.9).all()


def test_late_attainment_counts_the_latest_quarter_of_arrivals():
    t = Targets(ttft_s=1.0, tpot_s=1.0)
    # eight requests arriving in order; the last two (the latest quarter) miss TTFT, as a growing queue makes them
    df = pd.DataFrame({"arrival_s": [7, 0, 1, 2, 3, 4, 5, 6], "finish_s": [9.0] * 8,
                       "ttft_s": [5.0, .1, .1, .1, .1, .1, .1, 5.0], "tpot_s": [.1] * 8})
    assert late_attainment(df, t) == 0.0
    assert met_targets(df, t).mean() == 0.75
    assert late_attainment(df, t, share=0.5) == 0.5
    with pytest.raises(ValueError, match="share"):
        late_attainment(df, t, share=0)


def test_rate_search_refuses_a_rate_whose_queue_grows_on_a_short_run():
    # 100 evenly spaced requests, at most 4 running: service saturates near 8.4 req/s.  At 8.75 req/s the queue
    # grows for the whole run: 94 % of requests meet a loose TTFT target, but only 76 % of the latest quarter
    w = WorkloadConfig(requests=100, arrival="uniform", lengths="fixed", prompt_tokens=64, output_tokens=16, seed=3)
    t, sched = Targets(ttft_s=1.2, tpot_s=1.0), SchedulerConfig(max_batch=4)
    over = serve(dataclasses.replace(w, rate=8.75), linear(), sched, targets=t)
    assert over.summary["attainment"].iloc[0] >= 0.9 > late_attainment(over.requests, t)
    best, tried = search_rate(w, linear(), sched, targets=t, lo=1.0, hi=100, rel_tol=0.01)
    assert best < 8.75
    ok = tried[tried["rate"] <= best]
    assert (ok["attainment"] >= 0.9).all() and (ok["late_attainment"] >= 0.9).all()


def test_timeline_has_one_event_per_iteration():
    res = serve(reqs([(0.0, 10, 3)]), linear())
    ev = chrome_trace(res.iterations)["traceEvents"]
    assert sum(e["ph"] == "X" for e in ev) == len(res.iterations)


# ----------------------------------------------------------------------------- workloads
def test_workloads_are_seeded_and_reproducible():
    a = generate(WorkloadConfig(requests=100, seed=5))
    b = generate(WorkloadConfig(requests=100, seed=5))
    c = generate(WorkloadConfig(requests=100, seed=6))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_gamma_arrivals_have_the_chosen_cv_and_rate():
    w = generate(WorkloadConfig(requests=40000, rate=4.0, arrival="gamma", cv=3.0, seed=1))
    gaps = np.diff(w["arrival_s"].to_numpy())
    assert gaps.mean() == pytest.approx(0.25, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.1)


def test_conversation_lengths_reproduce_the_published_median_and_p99():
    s = trace_statistics("conversation")
    w = generate(WorkloadConfig(requests=40000, lengths="conversation", max_prompt=1 << 20, max_output=1 << 20))
    assert np.median(w["prompt_tokens"]) == pytest.approx(s["prompt_median"], rel=0.03)
    assert np.percentile(w["prompt_tokens"], 99) == pytest.approx(s["prompt_p99"], rel=0.06)
    assert np.median(w["output_tokens"]) == pytest.approx(s["output_median"], rel=0.03)
    assert np.percentile(w["output_tokens"], 99) == pytest.approx(s["output_p99"], rel=0.06)


@pytest.mark.parametrize("rows, match", [
    ([(1.0, 10, 5), (0.5, 10, 5)], "sorted by arrival"),
    ([(0.0, -3, 5)], "prompt_tokens"),
    ([(0.0, 10, 0)], "output_tokens"),
    ([(0.0, 10**9, 5)], "prompt_tokens"),
    ([(-1.0, 10, 5)], "arrival_s"),
    ([(float("nan"), 10, 5)], "arrival_s"),
    ([(0.0, 2.5, 5)], "prompt_tokens"),
])
def test_bad_request_tables_get_a_clear_error(rows, match):
    with pytest.raises(ValueError, match=match):
        check_requests(reqs(rows))


def test_bad_request_csv_files(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("arrival_s,prompt_tokens\n0,10\n")
    with pytest.raises(ValueError, match="missing column"):
        load_requests(p)
    p.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,x\n")
    with pytest.raises(ValueError, match="output_tokens"):
        load_requests(p)
    with pytest.raises(FileNotFoundError):
        load_requests(tmp_path / "absent.csv")


@pytest.mark.parametrize("field, value", [("rate", 0), ("rate", 1e9), ("requests", 0), ("cv", -1),
                                          ("arrival", "bursty"), ("lengths", "chat")])
def test_bad_workload_fields_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"workload.{field}"):
        WorkloadConfig(**{field: value})


@pytest.mark.parametrize("cls, kw, match", [
    (Targets, dict(ttft_s=0), "targets.ttft_s"), (Targets, dict(tpot_s=-1), "targets.tpot_s"),
    (SchedulerConfig, dict(policy="fcfs"), "prefill-first"), (SchedulerConfig, dict(max_batch=0), "max_batch"),
    (ParallelConfig, dict(prefill_instances=1), "decode_instances"), (ParallelConfig, dict(tp=0), "parallel.tp"),
    (SchedulerConfig, dict(host_overhead_s=-0.001), "scheduler.host_overhead_s"),
    (SchedulerConfig, dict(host_overhead_s_per_seq=2.0), "scheduler.host_overhead_s_per_seq"),
])
def test_bad_configs_name_the_field_and_choices(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw)


def test_fuzzed_request_tables_are_served_or_refused_cleanly():
    rng = np.random.default_rng(0)
    deadline = time.monotonic() + 10.0          # a bounded fuzz: at most 40 cases or 10 s
    for _ in range(40):
        if time.monotonic() > deadline:
            break
        n = int(rng.integers(1, 12))
        t = np.sort(rng.uniform(0, 1, n))
        p = rng.integers(1, 300, n).astype(float)
        o = rng.integers(1, 40, n).astype(float)
        k = int(rng.integers(0, 5))
        if k == 1:
            t[rng.integers(0, n)] = rng.choice([-1.0, np.nan, np.inf])
        elif k == 2:
            p[rng.integers(0, n)] = rng.choice([0, -5, 1e12, 0.5])
        elif k == 3 and n > 1:
            t = t[::-1].copy()
        try:
            res = serve(reqs(list(zip(t, p, o))), linear(), scheduler=SchedulerConfig(block_tokens=4, kv_blocks=64))
        except ValueError as e:
            assert str(e)
            continue
        fin = res.requests["finish_s"].notna() | res.requests["rejected"]
        assert fin.all()


# ----------------------------------------------------------------------------- interconnect and cost model
def test_allreduce_closed_forms():
    ic = InterconnectConfig(name="x", links_per_chip=2, link_gbps=50, latency_us=1.0, sync_us_per_peer=0.5,
                            launch_us=2.0, topology="switch")
    S, n, Bw = 1 << 20, 4, 100e9
    assert allreduce_seconds(S, n, ic, "ring") == pytest.approx(2e-6 + 6 * (1e-6 + S / (4 * Bw)))
    assert allreduce_seconds(S, n, ic, "tree") == pytest.approx(2e-6 + 4 * (1e-6 + S / Bw))
    assert allreduce_seconds(S, n, ic, "one-shot") == pytest.approx(2e-6 + 1e-6 + 1.5e-6 + 3 * S / Bw)
    assert allreduce_seconds(S, n, ic, "two-shot") == pytest.approx(2e-6 + 2e-6 + 3e-6 + 1.5 * S / Bw)
    assert allreduce_seconds(S, n, ic) == min(allreduce_seconds(S, n, ic, a)
                                              for a in ("ring", "tree", "one-shot", "two-shot"))
    assert allreduce_seconds(S, 1, ic) == 0.0
    assert allreduce_bytes_moved(S, n, ic, "ring") == pytest.approx(4 * 1.5 * S)


def test_ring_topology_pays_hops_for_direct_algorithms():
    sw = InterconnectConfig(name="s", topology="switch")
    ring = InterconnectConfig(name="r", topology="ring")
    assert allreduce_seconds(1 << 20, 8, ring, "one-shot") > allreduce_seconds(1 << 20, 8, sw, "one-shot")
    assert allreduce_seconds(1 << 20, 8, ring, "ring") == allreduce_seconds(1 << 20, 8, sw, "ring")


def test_interconnect_yaml_errors_name_the_field(tmp_path):
    p = tmp_path / "ic.yaml"
    p.write_text("name: x\ntopology: torus\n")
    with pytest.raises(ValueError, match="topology.*switch"):
        load_interconnect(p)
    p.write_text("name: x\nbandwidth: 3\n")
    with pytest.raises(ValueError, match="unknown field"):
        load_interconnect(p)
    with pytest.raises(ValueError, match="not a preset"):
        load_interconnect("no-such-link")


def test_grid_cost_model_is_exact_on_a_piecewise_linear_chip():
    # a roofline-like chip: max(memory time, compute time) + attention linear in KV and pairs
    def evaluate(phase, batch, new, context):
        tokens = batch * new
        s = max(1e-3, 2e-5 * tokens) + 1e-9 * batch * context + (
            1e-10 * attention_pairs(new, context) if phase == "prefill" else 0.0)
        return s, 50.0 * s
    g = GridCostModel(facts=facts(), evaluate=evaluate, tokens=(1, 50, 1024), batches=(1, 50, 1024),
                      contexts=(512, 4096), chunks=(128, 1024), base_context=16)
    err = g.fit_error([("decode", 20, 1, 1000), ("decode", 300, 1, 2000), ("prefill", 1, 300, 1300)])
    assert np.abs(err["error_s"]).max() < 0.02
    assert np.allclose(err["error_j"], err["error_s"])


def test_a_roofline_knee_between_two_token_points_is_interpolated_exactly():
    # weight-bound until 20 tokens, compute-bound past them: the knee lies between the grid points 16 and 32,
    # where the chord is 8 % high at 24 tokens
    def evaluate(phase, batch, new, context):
        s = max(2e-3, 1e-4 * batch * new)
        return s, 30.0 * s
    g = GridCostModel(facts=facts(), evaluate=evaluate, tokens=(1, 8, 16, 32, 64), batches=(1, 16),
                      contexts=(512,), chunks=(128,), base_context=16)
    for t in (4, 12, 20, 24, 30, 48):
        assert g.cost(t, t * 16, ())[0] == pytest.approx(evaluate("decode", t, 1, 16)[0], rel=1e-12)
    assert g.cost(24, 24 * 16, ())[1] == pytest.approx(30.0 * 2.4e-3, rel=1e-12)


def test_decode_attention_with_a_fixed_part_per_step_is_interpolated_exactly_between_batches():
    # reading the KV cache costs 200 ns per context token per step plus 3 ns per token per request: the rate
    # per request (200 / B + 3 ns) is far from linear in B between the grid batches 1 and 16, its sum is not
    def evaluate(phase, batch, new, context):
        s = 1e-3 + 1e-6 * batch + (context - 16) * (2e-7 + 3e-9 * batch)
        return s, 10.0 * s
    g = GridCostModel(facts=facts(capacity_bytes=1e12), evaluate=evaluate, tokens=(1, 16, 128, 256),
                      batches=(1, 16, 128), contexts=(512, 4096), chunks=(128,), base_context=16)
    for b, c in ((6, 1448), (45, 700), (200, 2000)):
        assert g.cost(b, b * c, ())[0] == pytest.approx(evaluate("decode", b, 1, c)[0], rel=1e-9)


def test_grid_points_beyond_the_schedulers_share_of_memory_are_not_simulated():
    asked = []

    def evaluate(phase, batch, new, context):
        asked.append((phase, batch, context))
        return 1e-3 + 1e-9 * batch * context, 1.0
    # 10 GB of memory, 1 GB of weights, 100 KB of KV a token: 128 x 512 tokens (6.6 GB) fit 90 %, not 50 %
    for share, simulated in ((0.9, True), (0.5, False)):
        asked.clear()
        GridCostModel(facts=facts(), evaluate=evaluate, tokens=(1, 128), batches=(1, 128), contexts=(64, 512),
                      chunks=(16,), memory_fraction=share)
        assert (("decode", 128, 512) in asked) is simulated
    with pytest.raises(ValueError, match="memory_fraction"):
        GridCostModel(facts=facts(), evaluate=evaluate, memory_fraction=0.0)


def test_validation_rows_hand_cases_pass_and_allreduce_rows_carry_their_error():
    hand = hand_checks()
    assert len(hand) == 7 and hand["passed"].all()
    ar = allreduce_checks("nvlink4-h100")
    assert len(ar) == 6                          # 32 KB and 1 MB at TP 2 / 4 / 8, passing or not
    ic = load_interconnect("nvlink4-h100")
    for r in ar.itertuples(index=False):
        n = int(r.check.split("TP ")[1].split()[0])
        size = 32 * 1024 if "32 KB" in r.check else 1 << 20
        sim_us = allreduce_seconds(size, n, ic) * 1e6
        assert r.simulated == pytest.approx(sim_us)
        assert r.error == pytest.approx((sim_us - r.reference) / r.reference)
        assert r.passed == (abs(r.error) <= r.tolerance)


def test_by_size_runs_one_shot_below_the_threshold_and_two_shot_above():
    ic = InterconnectConfig(name="x", algorithm="by-size", oneshot_below_kb=[[2, 1e9], [4, 512], [8, 256]],
                            direct_gbps=50.0, latency_us=1.0, launch_us=5.0, direct_below_kb=8192)
    for n, nbytes, algo in ((2, 7 << 20, "one-shot"), (4, 511 * 1024, "one-shot"), (4, 512 * 1024, "two-shot"),
                            (8, 255 * 1024, "one-shot"), (8, 1 << 20, "two-shot"), (16, 1024, "two-shot"),
                            (2, 8 << 20, "ring"), (8, 32 << 20, "ring")):
        assert ic.by_size(nbytes, n) == algo
        assert allreduce_seconds(nbytes, n, ic) == allreduce_seconds(nbytes, n, ic, algo)
    # the direct kernels stream at direct_gbps: 1 MB two-shot over 8 = 5 + 2 + 1.75 MB / 50 GB/s
    assert allreduce_seconds(1 << 20, 8, ic) == pytest.approx(7e-6 + 1.75 * (1 << 20) / 50e9)
    # ring and tree keep the links' bandwidth (1 link x 25 GB/s)
    assert allreduce_seconds(1 << 20, 8, ic, "ring") == pytest.approx(5e-6 + 14 * (1e-6 + (1 << 20) / 8 / 25e9))


@pytest.mark.parametrize("kw, match", [
    (dict(algorithm="by-size"), "oneshot_below_kb"),
    (dict(oneshot_below_kb=[[4, 512], [2, 100]]), "chip counts must increase"),
    (dict(oneshot_below_kb=[[4]]), r"oneshot_below_kb\[0\]"),
    (dict(direct_gbps=-1), "direct_gbps"),
])
def test_bad_direct_allreduce_fields_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        InterconnectConfig(name="x", **kw)


def test_oneshot_fit_recovers_launch_and_bandwidth_from_exact_rows():
    launch, lat, gbps = 4.0, 1.5, 80.0
    rows = [(n, 32768.0, launch + lat + (n - 1) * 32768 / (gbps * 1e3)) for n in (2, 4, 8)]
    assert fit_oneshot(rows, lat) == pytest.approx((launch, gbps))


def test_nvlink_preset_is_fitted_on_the_32kb_rows_alone_and_holds_out_1mb():
    ic = load_interconnect("nvlink4-h100")
    fitted = fit_oneshot([(n, b, t) for n, b, t, _ in allreduce_rows("32kb")], ic.latency_us)
    assert (ic.launch_us, ic.direct_gbps) == pytest.approx(fitted, rel=2e-3)
    held_out = allreduce_checks(ic)
    held_out = held_out[held_out["check"].str.contains("held out")]
    assert len(held_out) == 3 and held_out["check"].str.contains("two-shot").sum() == 2     # TP 4 and 8


def test_decode_attention_is_interpolated_per_cached_token_and_overflowing_points_are_not_simulated():
    asked = []

    def evaluate(phase, batch, new, context):      # weights bend at batch 64; KV read costs 3 ns a token
        asked.append((phase, batch, context))
        s = 1e-3 * max(1.0, batch / 64) + 3e-9 * batch * context + (
            1e-10 * attention_pairs(new, context) if phase == "prefill" else 0.0)
        return s, 10.0 * s
    f = facts(capacity_bytes=11e9)                 # 10 GB of KV: 100,000 tokens
    g = GridCostModel(facts=f, evaluate=evaluate, tokens=(1, 16, 64, 128, 256), batches=(1, 16, 128),
                      contexts=(512, 4096), chunks=(128,), base_context=16)
    assert ("decode", 128, 4096) not in asked                    # 524,288 tokens of KV: never simulated
    for b, c in ((45, 1448), (100, 700), (7, 3000)):
        direct = evaluate("decode", b, 1, c)[0]
        assert g.cost(b, b * c, ())[0] == pytest.approx(direct, rel=1e-9)


def _measured_tokens() -> pd.DataFrame:
    """A tiny measured_trace-like table: two batched graph tokens, one single-sequence token and one batched
    token timed without a graph (neither of the last two is a serving iteration)."""
    base = dict(op="token_decode", K=2048, cuda_graph=True, kv_bits=16.0, gpu="NVIDIA H100 80GB HBM3")
    rows = [dict(base, kernel="7b_fp16", impl="baseline", precision="fp16", variant="torch_eager", M=8, us=1000.0),
            dict(base, kernel="7b_b1.58-kv4", impl="ours", precision="b1.58", variant="per_operator", M=32,
                 us=400.0, kv_bits=4.0),
            dict(base, kernel="7b_a4.8", impl="ours", precision="a4.8", variant="separate_pdl", M=1, us=50.0),
            dict(base, kernel="7b_a4.8", impl="ours", precision="a4.8", variant="per_operator", M=8, us=70.0,
                 cuda_graph=False),
            dict(base, op="block_decode", kernel="block_fp16", impl="baseline", precision="fp16", variant="", M=8,
                 us=30.0)]
    return pd.DataFrame(rows)


def test_iteration_rows_compare_each_batched_graph_token_and_show_a_wrong_simulation_as_a_miss():
    simulated = {("7b_fp16", 8): 1100.0, ("7b_b1.58-kv4", 32): 600.0}      # +10 % (passes), +50 % (misses)
    t = iteration_checks(_measured_tokens(), lambda r: (simulated[(r["kernel"], r["M"])], "preset-x"), "tiny")
    assert list(t["reference"]) == [1000.0, 400.0]
    assert list(t["simulated"]) == [1100.0, 600.0]
    assert t["error"].tolist() == pytest.approx([0.10, 0.50])
    assert t["passed"].tolist() == [True, False]
    assert set(t["group"]) == {"iteration"} and set(t["unit"]) == {"us"} and set(t["tolerance"]) == {0.20}
    assert "batch 32 context 2048 on preset-x" in t["check"].iloc[1] and "tiny" in t["source"].iloc[1]


def test_iteration_simulator_runs_each_measured_program_on_its_preset_with_its_launches_and_kv_cache(monkeypatch):
    calls = []

    def record(trace, accel):
        layer0 = trace[trace["layer"] == 0]
        kv = sorted(set(layer0.loc[layer0["op_class"] == "attention", "weight_format"]))
        calls.append((accel.name, int(layer0["M"].max()), kv, int(layer0["launches"].sum())))
        return type("Result", (), {"summary": type("Summary", (), {"latency_s": 1e-3 * len(calls)})()})()

    monkeypatch.setattr(serving_experiment.sim, "simulate", record)
    base = dict(op="token_decode", K=2048, cuda_graph=True, gpu="NVIDIA H100 80GB HBM3")
    rows = pd.DataFrame([
        dict(base, kernel="7b_fp16", impl="baseline", precision="fp16", variant="torch_eager", M=8, us=1.0,
             kv_bits=16.0),
        dict(base, kernel="7b_b1.58-kv4", impl="ours", precision="b1.58", variant="per_operator", M=32, us=1.0,
             kv_bits=4.0),
        dict(base, kernel="7b_a4.8", impl="ours", precision="a4.8", variant="per_operator", M=8, us=1.0,
             kv_bits=16.0)])
    t = iteration_checks(rows, serving_experiment.iteration_simulator(), "tiny")
    # torch eager: 40 launches a block (sim.validation.eager); ours: 28 with a 4-bit cache, a4.8 26 on its
    # 3-bit cache (the row's kv_bits 16 is the label's, not what ran)
    assert calls == [("h100-like", 8, ["kv-fp16"], 40), ("h100-triton", 32, ["kv-int4"], 28),
                     ("h100-triton", 8, ["kv-int3"], 26)]
    assert t["simulated"].tolist() == pytest.approx([1000.0, 2000.0, 3000.0])


def test_shard_rows_simulate_one_layers_linear_part_of_each_measured_w8a8_shard_and_skip_the_rest(monkeypatch):
    calls = []

    def record(trace, accel):
        calls.append((accel.name, sorted(set(trace["layer"])), int(trace["M"].max()), int(trace["N"].max()),
                      sorted(set(trace["op_class"])), int(trace["launches"].sum())))
        return type("Result", (), {"summary": type("Summary", (), {"latency_s": 2e-4})()})()

    monkeypatch.setattr(serving_experiment.sim, "simulate", record)
    # what is checked here is which ops and shapes are simulated, not their zero statistics: a stub in place of
    # measuring a 70B layer's (seconds of FP8 weight quantization on the CPU)
    import collections

    import model.trace as trace_module
    monkeypatch.setattr(trace_module, "random_stats", lambda *a, **k: (
        collections.defaultdict(lambda: trace_module.OpStats(0.0, 0.0)), "stub statistics"))
    base = dict(op="shard_linear", cuda_graph=True, gpu="NVIDIA H100 80GB HBM3", launches=41, N=8192, K=14336)
    rows = pd.DataFrame([dict(base, kernel="70b_tp2_w8a8-fp8", precision="w8a8-fp8", M=64, tp=2, us=250.0),
                         dict(base, kernel="70b_tp8_w8a8-fp8", precision="w8a8-fp8", M=8, tp=8, us=100.0),
                         dict(base, kernel="70b_tp2_b1.58", precision="b1.58", M=64, tp=2, us=90.0),
                         dict(base, op="gemm", kernel="cublas_fp8_w8a8", precision="w8a8-fp8", M=8, tp=2, us=9.0)])
    t = serving_experiment.shard_table(rows)
    # one layer (0) of GEMMs and vector ops, no attention; the widest GEMM of a TP 2 shard is gate (28672 / 2),
    # of a TP 8 shard 28672 / 8; 41 launches each (4 quantizers x 7, 4 GEMMs and their casts, 2 adds, 3 GLU)
    assert calls == [("h100-like", [0], 64, 14336, ["gemm", "vector"], 41),
                     ("h100-like", [0], 8, 8192, ["gemm", "vector"], 41)]
    assert t["reference"].tolist() == [250.0, 100.0] and t["simulated"].tolist() == pytest.approx([200.0, 200.0])
    assert t["passed"].tolist() == [True, False] and set(t["group"]) == {"shard"}
    assert "TP 8 shard, batch 8" in t["check"].iloc[1] and "measured program 41 kernels" in t["check"].iloc[1]
    assert serving_experiment.shard_table(Path("no/such/table.parquet")).empty
