"""MixBin: budgeted FP/binary unit selection (gated search + exact knapsack), its baselines, and
classification training, generic over a ``mixbin.task.Task`` (classification now, tracking later).

Modules: ``gates`` (psi -> z, soft OPs, budget and crispness losses), ``select`` (exact selection,
brute-force reference, greedy fills), ``data`` (ImageFolder in the BGR network convention), ``task``
(the Task protocol, ``ClassificationTask``), ``checkpoint`` (safetensors + JSON sidecar), ``finetune``
(the shared training loop), ``common`` (shared CLI options and the final write step), and the CLIs
``search``, ``baseline`` and ``train``.
"""
