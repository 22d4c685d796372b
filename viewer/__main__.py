"""``python -m viewer`` / ``hounsfield``: the GUI by default, subcommands for headless work."""
from viewer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
