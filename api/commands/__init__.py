"""Typer sub-apps of the ``gridmap`` CLI, one module per noun (``api/cli.py`` adds them)."""
