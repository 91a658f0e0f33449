"""``python -m importer.sandbox``."""

from importer.sandbox.command import main

raise SystemExit(main())
