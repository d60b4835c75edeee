"""Reference BitNet model (FP16 / b1.58 / a4.8 / a4.8-fp4) and its op traces.

Modules: ``quant`` (bit-exact quantizers, the golden arithmetic), ``fakequant``
(the same codes as trainable float ops with STE), ``config`` (ModelConfig and
presets), ``model`` (the decoder), ``paper_sparsity`` (a4.8 Table 2),
``trace`` (op traces, ``build_trace``), ``cli`` (``bitsim trace``).
"""
