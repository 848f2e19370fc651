from agora.daemon.main import main

raise SystemExit(main())
