"""PyInstaller entry point: the same `hounsfield` command as the installed script."""
import multiprocessing

from viewer.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(main())
