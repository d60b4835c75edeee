"""Reference BitNet model (FP16 / b1.58 / a4.8 / a4.8-fp4), its op traces, and its training.

Modules: ``quant`` (bit-exact quantizers, the golden arithmetic), ``fakequant``
(the same codes as trainable float ops with STE), ``config`` (ModelConfig and
presets), ``model`` (the decoder), ``paper_sparsity`` (a4.8 Table 2),
``trace`` (op traces, ``build_trace``), ``corpus`` (training text that needs no
download, byte tokenizer), ``train`` (``TrainConfig``, the training loop, plans),
``checkpoint`` (small inference checkpoints), ``training_report`` (training
tables and figures), ``cli`` (``bitsim trace``, ``bitsim train``).
"""
