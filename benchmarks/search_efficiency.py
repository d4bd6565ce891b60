"""How much compute each search strategy needs to find a good configuration, measured by
replaying recorded CIFAR-10 learning curves (issue #14).

    python benchmarks/search_efficiency.py [--table PATH] [--reps 100] [--out DIR]
        [--workers 4] [--budget 20] [--horizon 100] [--jobs N] [--candidates] [--synthetic]

Strategies: random search, TPE, TPE with Hyperband and with successive halving as hpsearch's
examples set them, hpsearch's default (whatever a spec without sampler and pruner gets), and
Syne Tune's ASHA and BOHB as peers (``pip install -e '.[bench]'``). hpsearch's strategies run
hpsearch's own spec, sampler, pruner and reporter code against a simulated clock
(benchmarks/search_replay/). The output ends with one line: the default's compute to get within
0.5 points of the table's best, as a multiple of random search's and of the best peer's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.search_replay.bench import main as run

    return run(argv)


if __name__ == "__main__":
    if not __package__:  # run as a file: make the repository's packages importable
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
