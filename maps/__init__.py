"""Folium maps of hotspots, workloads and plan changes, built to open offline."""
