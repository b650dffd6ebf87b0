"""The numbers of the precision model, apart so that settings and the CLI import no GEOS.

See ``geo/topology.py`` for how they are used and why they are what they are.
"""

#: The storage precision grid: 1e-8 degrees is 1.1 mm north-south and 0.9 mm east-west at
#: Dalian, ten times finer than the default tolerance, so rounding never decides topology.
PRECISION_DEG = 1e-8
#: Default topology tolerance (``GRIDMAP_TOLERANCE_M``): differences narrower than this are
#: drawing or reprojection noise. 1 cm is far below what a planner can draw or see and far
#: above float and reprojection noise (a T-junction on a 300 m edge bends by ~1.4 mm).
DEFAULT_TOLERANCE_M = 0.01
#: Default width up to which ``--repair`` absorbs real gaps and overlaps (``--repair-width-m``):
#: a metre is a digitising slip; anything wider is a boundary someone has to decide.
DEFAULT_REPAIR_WIDTH_M = 1.0
#: Edges longer than this are densified in the CRS they were drawn in before reprojection,
#: so a straight Gauss–Krüger edge stays within a millimetre of itself in lon/lat (its lon/lat
#: chord is 1.6 cm off over 1 km) and later cuts can end on an existing vertex nearby.
MAX_EDGE_M = 20.0
#: Snap-rounding grid for noding in a projected CRS (metres).
NODING_GRID_M = 0.001
