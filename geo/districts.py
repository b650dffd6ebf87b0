"""Districts among districts: a new district's outline must not cover ground a stored one holds.

Two districts sharing ground would make a point belong to two grids, and lookups would
silently answer the smaller code. Neighbours drawn by different hands never share a
border exactly, though, so an overlap counts only where it is wider than the topology
tolerance (``GRIDMAP_TOLERANCE_M``): a sliver thinner than that everywhere is noise,
whatever its length or area, as the load judges slivers inside a district.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.errors import GEOSException

from geo.crs import metric_crs_for, to_metric
from geo.errors import Problem
from geo.topology import polygonal

__all__ = ["DistrictOverlap", "district_overlaps"]

#: Edges are straight in lon/lat, where districts are stored; they are densified to this
#: step (about 10 m) before projecting, so that the metric copy keeps their shape.
_DENSIFY_DEG = 1e-4


@dataclass(frozen=True)
class DistrictOverlap:
    """Ground that a new district shares with a stored one, measured in a metric CRS."""

    code: str
    other_code: str
    other_name: str
    area_m2: float
    width_m: float
    pieces: int
    lon: float
    lat: float

    def problem(self, source: str | None = None) -> Problem:
        """The refusal line: both districts, how much ground, how wide, and where."""
        return Problem(
            f"overlaps stored district {self.other_code} {self.other_name} by "
            f"{self.area_m2:,.2f} m² in {self.pieces} piece{'s' if self.pieces != 1 else ''}, "
            f"up to {self.width_m:,.2f} m wide, the largest near "
            f"({self.lon:.6f}, {self.lat:.6f})",
            file=source,
            layer="district",
            feature=self.code,
            fix=f"redraw the outline so it does not cover district {self.other_code}, or, "
            f"if it is {self.other_code} redrawn, load it with code {self.other_code} "
            "and --replace",
        )


def district_overlaps(
    code: str,
    outline: shapely.Geometry,
    stored: Iterable[tuple[str, str, shapely.Geometry]],
    tolerance_m: float,
) -> list[DistrictOverlap]:
    """The stored districts ``(code, name, outline)`` that ``outline`` overlaps beyond noise.

    The overlay runs in EPSG:4326 (where both outlines are stored, so shared vertices meet
    exactly); each piece is then densified, projected to the UTM zone of its centre and
    kept only if it is wider than ``tolerance_m`` somewhere (a negative buffer of half
    the tolerance leaves something).
    """
    found: list[DistrictOverlap] = []
    for other_code, other_name, other in stored:
        try:
            shared = polygonal(shapely.intersection(outline, other))
        except GEOSException:  # invalid stored or new outline: judge the repaired shapes
            shared = polygonal(
                shapely.intersection(shapely.make_valid(outline), shapely.make_valid(other))
            )
        pieces = [p for p in shapely.get_parts(shared) if not p.is_empty]
        if not pieces:
            continue
        real: list[tuple[float, float, shapely.Geometry]] = []
        for piece in pieces:
            centre = shapely.point_on_surface(piece)
            dense = shapely.segmentize(piece, _DENSIFY_DEG)
            projected, _ = to_metric(np.array([dense]), metric_crs_for(centre.x, centre.y))
            metric = projected[0]
            if shapely.buffer(metric, -tolerance_m / 2).is_empty:
                continue  # thinner than the tolerance everywhere: noise
            # The widest point, to a hundredth of the piece's mean width (2 area / perimeter).
            step = max(tolerance_m / 10, 0.02 * shapely.area(metric) / shapely.length(metric))
            radius = shapely.length(shapely.maximum_inscribed_circle(metric, step))
            real.append((float(shapely.area(metric)), 2.0 * float(radius), piece))
        if not real:
            continue
        largest = max(real, key=lambda item: item[0])[2]
        where = shapely.point_on_surface(largest)
        found.append(
            DistrictOverlap(
                code=code,
                other_code=str(other_code),
                other_name=str(other_name),
                area_m2=round(sum(area for area, _, _ in real), 2),
                width_m=round(max(width for _, width, _ in real), 2),
                pieces=len(real),
                lon=float(where.x),
                lat=float(where.y),
            )
        )
    return found
