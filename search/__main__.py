"""``python -m search`` is the ``hpsearch`` command."""

from search.cli import main

raise SystemExit(main())
