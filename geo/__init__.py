"""gridmap's domain: grids, plans, regridding, assignment and the PostGIS store.

Nothing here imports FastAPI, Typer or Folium: the API, the CLI and the maps call in.
"""
