"""``python -m samplestore`` runs the command-line interface."""

from samplestore.cli.main import main

raise SystemExit(main())
