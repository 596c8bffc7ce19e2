"""``python -m raystack.cli``: the same as the ``raystack`` command."""

from raystack.cli import main

main()
