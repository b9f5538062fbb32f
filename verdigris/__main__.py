from verdigris.cli import main

raise SystemExit(main())
