"""``python -m metaleep``: the command-line interface."""

from metaleep.cli import main

if __name__ == "__main__":
    main()
