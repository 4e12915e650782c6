"""``python -m mosaic_client``: the same as the ``mosaic`` command."""

from mosaic_client.cli import main

raise SystemExit(main())
