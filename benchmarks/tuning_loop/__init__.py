"""The tuning loop on real data: a study, its promotion, and what it is worth on a holdout.

    python -m benchmarks.tuning_loop [--epochs 10] [--trials 16] [--workers 2] [--seeds 3]

Runs ``examples/round2.yaml`` rescaled to a CPU budget through hpsearch's own API (launch,
promotion on) on a class-stratified pool of the CIFAR-10 training split, then trains four
configurations on the same seeds with the trainer directly: the study's winner, the default
``hpsearch train`` resolves afterwards (the promoted row, or whatever is in force), the round-2
baseline as the study ran it, and a reference recipe (OneCycle SGD with Nesterov momentum). Each
is scored on a holdout drawn from the same split but disjoint from the pool, which no selection
ever sees (the trainer evaluates it once, at the end, with the best-validation weights). The
winner is compared with each by the promotion's paired rule. ``study.py`` runs the study,
``rows.py`` builds and measures the four rows, ``report.py`` prints and writes the results.
"""
