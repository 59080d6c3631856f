"""`python -m roastcore.jobs KIND --progress FILE -- ARGS`: the process of one task job
(roastcore/jobs/tasks.py); training jobs run `python -m roastcore train` instead."""

from roastcore.jobs.tasks import main

raise SystemExit(main())
