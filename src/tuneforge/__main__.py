"""`python -m tuneforge` is the `tuneforge` command (the worker spawns training children this way)."""

from tuneforge.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
