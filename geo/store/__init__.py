"""The PostGIS store: models, sessions, queries, migrations and the embedded cluster."""
