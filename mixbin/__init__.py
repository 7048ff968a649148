"""MixBin: budgeted FP/binary unit selection (gated search + exact knapsack), its baselines, and the
training they share, generic over a ``mixbin.task.Task``: image classification and SiamFC tracking
(``--task classification`` or ``tracking``).

Modules: ``gates`` (psi -> z, soft OPs, budget and crispness losses), ``select`` (exact selection,
brute-force reference, greedy fills, in the cost model's exact OP units), ``data`` (ImageFolder in the
backbone's input convention), ``task`` (the Task protocol, ``ClassificationTask``, and ``make_task``,
which also builds the tracking task), ``tracking`` (``TrackingTask``, SiamFC pairs and loss),
``finetune`` (every mask source's fine-tuning, on ``tracker.loop``), ``provenance`` (command line and seeding), ``common`` (shared CLI options and the
final write step), and the CLIs ``search``, ``baseline``, ``train`` and ``report`` (the results table).
"""
