"""``python -m mqtt_pki_lab``: the same as the ``mqtt-pki-lab`` command."""

from .cli import main

raise SystemExit(main())
