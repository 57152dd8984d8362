from minitwit.cli import main

raise SystemExit(main())
