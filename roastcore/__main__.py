from roastcore.cli import main

raise SystemExit(main())
