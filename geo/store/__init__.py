"""The PostGIS store: models, sessions, queries and migrations."""
