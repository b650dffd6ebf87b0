"""``python -m api`` runs the ``gridmap`` CLI."""

from api.cli import app

app()
