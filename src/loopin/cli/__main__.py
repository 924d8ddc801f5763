"""``python -m loopin.cli``: the same as the ``loopin`` command."""

from loopin.cli import main

main()
