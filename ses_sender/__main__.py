from ses_sender.cli import main

raise SystemExit(main())
