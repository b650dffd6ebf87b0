"""The HTTP API (FastAPI) and the ``gridmap`` CLI (Typer): thin layers over ``geo``."""
