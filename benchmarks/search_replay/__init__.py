"""Replaying search strategies against a recorded table of learning curves (issue #14).

``simulator.py`` runs hpsearch's own search code (spec -> sampler and pruner, the trainer's
reporter) for several asynchronous workers on a simulated clock; ``peers.py`` runs Syne Tune's
methods through its simulator on the same table; ``grid_space.py`` snaps suggestions onto the
table and says what a configuration is worth; ``trace.py`` is what one simulated study did;
``metrics.py`` and ``plot.py`` turn many traces into figures; ``bench.py`` is the benchmark
behind ``benchmarks/search_efficiency.py``; ``synthetic.py`` makes a tiny table for tests.
"""
