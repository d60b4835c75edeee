"""Reference BitNet model (FP16 / b1.58 / a4.8 / a4.8-fp4, and the quantized baselines W4A16, W8A8
INT8 / FP8, MXFP4), its op traces, and its training.

Modules: ``quant`` (bit-exact quantizers, the golden arithmetic), ``baselines`` (the quantized
baselines' formats and products), ``fakequant`` (the same codes as trainable float ops with STE),
``config`` (ModelConfig, presets, weight memory), ``model`` (the decoder), ``paper_sparsity`` (a4.8
Table 2), ``trace`` (op traces, ``build_trace``), ``trace_stats`` (their measured statistics),
``stats_cache`` (statistics computed once), ``zero_batch`` (the batch rule of zero skipping),
``corpus`` (training text that needs no download, byte tokenizer), ``train`` (``TrainConfig``, the
training loop, plans), ``checkpoint`` (small inference checkpoints), ``training_report`` (training
tables and figures), ``cli`` (``bitsim trace``, ``bitsim train``).
"""
