"""The HTTP API (FastAPI) and the ``gridmap`` CLI (Typer): thin layers over ``geo``, and the
private PostgreSQL they start when no database URL is given (``embedded_postgres``)."""
