"""``python -m scopeloss.registry check [MODULE...]``: try each loss before any job
(``scopeloss.loss_check``; needs torch). A file of its own, so that the registry, which the
analysis and the Snakefile import, never imports the check (nor torch) back."""

from scopeloss.loss_check import main

raise SystemExit(main())
