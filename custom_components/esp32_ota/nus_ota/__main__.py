"""`python -m nus_ota`: see cli.py."""

from .cli import main

main()
