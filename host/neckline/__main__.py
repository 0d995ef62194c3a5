from neckline.cli import main

raise SystemExit(main())
