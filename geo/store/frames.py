"""Rows to frames and values to JSON: the conversions every store module shares.

Kept apart from the modules that query, so that ``geo.store.queries`` and
``geo.store.plans`` both build on it without importing each other.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geoalchemy2.elements import WKBElement
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store.models import SRID


def as_wkb(geom: shapely.Geometry) -> WKBElement:
    return WKBElement(shapely.to_wkb(geom), srid=SRID, extended=False)


def read_frame(session: Session, sql: str, **params: Any) -> gpd.GeoDataFrame:
    return gpd.read_postgis(
        text(sql).bindparams(**params), session.connection(), geom_col="geom", crs=SRID
    )


def _expand_attrs(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if "attrs" not in frame.columns:
        return frame
    extra = pd.DataFrame(list(frame["attrs"].map(lambda a: a or {})), index=frame.index)
    frame = frame.drop(columns=["attrs"])
    for column in sorted(extra.columns):
        if column not in frame.columns:
            frame[column] = extra[column]
    return frame


def finish_frame(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``attrs`` spread back into columns, geometry named ``geometry``, a fresh index."""
    frame = _expand_attrs(frame).rename_geometry("geometry")
    return frame.reset_index(drop=True)


def jsonable(value: Any) -> Any:
    """Plain JSON values (numpy scalars, frames, NaN as null) for jsonb columns and ``--json``."""
    return json.loads(json.dumps(value, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return value.to_dict("records")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
