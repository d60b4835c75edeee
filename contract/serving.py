"""The serving simulator's tables (``sim.serving``): requests, iterations, one summary, validation rows.

This module imports nothing of the project but the contract.
"""
from __future__ import annotations

from contract.schemas import _cols, register

SERVING_REQUESTS = register("serving_requests", _cols(
    ("request", "int", "", "request index in arrival order"),
    ("instance", "int", "", "instance that served it (the decode instance when disaggregated)"),
    ("arrival_s", "float", "s", "arrival time"),
    ("prompt_tokens", "int", "token", "prompt length"),
    ("output_tokens", "int", "token", "tokens to generate"),
    ("first_token_s", "float", "s", "time its first output token was emitted (NaN: never)"),
    ("finish_s", "float", "s", "time its last output token was emitted (NaN: never)"),
    ("ttft_s", "float", "s", "time to first token: first_token_s - arrival_s"),
    ("tpot_s", "float", "s", "time per output token after the first: (finish - first) / (output - 1); 0 for one token"),
    ("e2e_s", "float", "s", "end-to-end latency: finish_s - arrival_s"),
    ("preemptions", "int", "", "times its KV cache was evicted (recomputed or swapped)"),
    ("rejected", "bool", "", "its prompt needs more KV blocks than an instance has; never served"),
    ("met_targets", "bool", "", "finished with TTFT and TPOT within the targets"),
), "One row per request of a serving run (sim.serving.serve).")

SERVING_ITERATIONS = register("serving_iterations", _cols(
    ("instance", "int", "", "instance running the iteration"),
    ("start_s", "float", "s", "iteration start"),
    ("end_s", "float", "s", "iteration end"),
    ("decode_requests", "int", "", "requests decoding one token"),
    ("decode_context", "int", "token", "sum of the decode requests' attention contexts"),
    ("prefill_requests", "int", "", "prefill chunks in the iteration"),
    ("prefill_tokens", "int", "token", "prompt tokens computed in the iteration"),
    ("kv_blocks_used", "int", "", "KV blocks held after admission"),
    ("kv_blocks_total", "int", "", "KV blocks of the instance"),
    ("preemptions", "int", "", "requests preempted to make room in this iteration"),
    ("running", "int", "", "requests holding KV"),
    ("waiting", "int", "", "requests waiting for a prefill"),
    ("compute_s", "float", "s", "chip time from the iteration cost model (incl. pipeline bubbles)"),
    ("comm_s", "float", "s", "tensor-parallel all-reduce time"),
    ("swap_s", "float", "s", "time moving swapped KV blocks to or from the host"),
    ("host_s", "float", "s", "host time the chips wait for (scheduler.host_overhead_s + host_overhead_s_per_seq x "
                               "sequences in the iteration)"),
    ("energy_j", "float", "J", "energy of all the instance's chips and links in the iteration"),
), "One row per scheduler iteration of a serving run (sim.serving.serve).")

SERVING_SUMMARY = register("serving_summary", _cols(
    ("name", "str", "", "the run's name (the serve spec's name; empty for a run from Python)"),
    ("model", "str", "", "model served (preset name or model YAML)"),
    ("datapath", "str", "", "datapath of the model (fp16, b1.58, a4.8, w4a16, ...)"),
    ("accelerator", "str", "", "accelerator preset or YAML the chips are"),
    ("profile", "str", "", "statistic profile of the op traces behind the iteration costs (measured: random-weight "
                           "statistics, paper-table2, trained; empty for a run from Python)"),
    ("chip", "str", "", "chip (accelerator) name of the cost model"),
    ("tp", "int", "", "tensor-parallel degree"),
    ("pp", "int", "", "pipeline stages"),
    ("instances", "int", "", "serving instances (replicas, or prefill + decode pools)"),
    ("disaggregated", "bool", "", "prefill and decode on separate instances"),
    ("chips", "int", "", "chips of the deployment: instances x tp x pp"),
    ("requests", "int", "", "requests offered"),
    ("finished", "int", "", "requests finished"),
    ("rejected", "int", "", "requests never served (prompt larger than an instance's KV)"),
    ("duration_s", "float", "s", "first arrival to last finish"),
    ("offered_rate", "float", "req/s", "measured arrival rate of the workload"),
    ("throughput_rps", "float", "req/s", "finished requests / duration"),
    ("output_tokens_per_s", "float", "token/s", "output tokens / duration"),
    ("total_tokens_per_s", "float", "token/s", "prompt + output tokens / duration"),
    ("goodput_rps", "float", "req/s", "requests meeting both targets / duration"),
    ("attainment", "float", "", "share of requests meeting both targets"),
    ("ttft_target_s", "float", "s", "time-to-first-token target"),
    ("tpot_target_s", "float", "s", "time-per-output-token target"),
    ("energy_j", "float", "J", "energy of all iterations (idle time not counted)"),
    ("tokens_per_j", "float", "token/J", "output tokens / energy_j"),
    ("output_tokens_per_s_per_chip", "float", "token/s", "output tokens per second per chip"),
    ("output_tokens_per_s_per_mm2", "float", "token/s/mm2", "output tokens per second per mm2 of silicon"),
    ("area_mm2", "float", "mm2", "silicon of all chips"),
    ("preemptions", "int", "", "preemptions of all requests"),
    ("kv_occupancy_mean", "float", "", "mean share of KV blocks held, over iterations"),
    ("kv_occupancy_max", "float", "", "largest share of KV blocks held"),
    ("iterations", "int", "", "scheduler iterations, all instances"),
    ("mean_batch", "float", "", "mean decode requests per iteration"),
    *((f"{m}_p{q}_s", "float", "s", f"{q}th percentile of {m.upper()} over finished requests")
      for m in ("ttft", "tpot", "e2e") for q in (50, 90, 99)),
    *((f"itl_p{q}_s", "float", "s", f"{q}th percentile of the inter-token latency: every gap between two "
       "consecutive output tokens of a request (as a serving benchmark's ITL)") for q in (50, 90, 99)),
    ("max_rate_rps", "float", "req/s", "highest request rate meeting the targets (rate search; NaN: no search, "
                                        "or even the lowest rate tried missed)"),
    *((f"{m}_at_max", "float", u, f"{d} at max_rate_rps (the search's run at that rate; NaN without one)")
      for m, u, d in (("goodput_rps", "req/s", "goodput"), ("tokens_per_j", "token/J", "output tokens per joule"),
                      ("output_tokens_per_s_per_mm2", "token/s/mm2", "output tokens per second per mm2"),
                      ("output_tokens_per_s_per_chip", "token/s", "output tokens per second per chip"),
                      ("ttft_p90_s", "s", "90th percentile of TTFT"), ("tpot_p90_s", "s", "90th percentile of TPOT"))),
    ("target_rate", "float", "req/s", "request rate the service must carry (0: none given)"),
    ("chips_needed", "float", "", "chips to carry target_rate within the targets: whole deployments of this shape "
                                  "at max_rate_rps each (NaN without a target or a rate)"),
), "One row per serving run: latency percentiles, throughput, goodput, energy and silicon per token, and the "
   "highest rate meeting the targets with the same metrics at it.")

#: The summary columns measured at the highest rate meeting the targets (``<metric>_at_max``).
AT_MAX_METRICS = ("goodput_rps", "tokens_per_j", "output_tokens_per_s_per_mm2", "output_tokens_per_s_per_chip",
                  "ttft_p90_s", "tpot_p90_s")

SERVING_VALIDATION = register("serving_validation", _cols(
    ("check", "str", "", "what is compared"),
    ("group", "str", "", "hand (scheduler against hand-computed cases), allreduce (published H100 latencies), "
                         "serving (published GPU serving numbers), fit (cost-model grid against direct simulation), "
                         "iteration (one decode iteration against a measured batched decode token on the GPU), "
                         "shard (one GPU's share of a tensor-parallel 70B layer's linear part against its measured "
                         "time)"),
    ("simulated", "float", "", "our value"),
    ("reference", "float", "", "the reference value"),
    ("unit", "str", "", "unit of both values"),
    ("error", "float", "", "(simulated - reference) / reference"),
    ("tolerance", "float", "", "largest |error| that passes"),
    ("passed", "bool", "", "|error| <= tolerance"),
    ("source", "str", "", "where the reference comes from"),
), "Serving-simulator validation: every row with its error, passing or not.")
