"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('districts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_districts')),
    sa.UniqueConstraint('code', name=op.f('uq_districts_code'))
    )
    op.create_index('ix_districts_geom_gist', 'districts', ['geom'], unique=False, postgresql_using='gist')
    op.create_table('grid_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'published', 'retired', name='plan_status'), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('author', sa.Text(), server_default='gridmap', nullable=False),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('effective_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_grid_plans_district_id_districts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['grid_plans.id'], name=op.f('fk_grid_plans_parent_id_grid_plans'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grid_plans'))
    )
    op.create_index(op.f('ix_grid_plans_district_id'), 'grid_plans', ['district_id'], unique=False)
    op.create_index('uq_grid_plans_one_published', 'grid_plans', ['district_id'], unique=True, postgresql_where=sa.text("status = 'published'"))
    op.create_table('grid_teams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('grid_code', sa.Text(), nullable=False),
    sa.Column('leader', sa.Text(), nullable=True),
    sa.Column('deputy', sa.Text(), nullable=True),
    sa.Column('party_secretary', sa.Text(), nullable=True),
    sa.Column('members', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_grid_teams_district_id_districts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grid_teams')),
    sa.UniqueConstraint('district_id', 'grid_code', name=op.f('uq_grid_teams_district_id_grid_code'))
    )
    op.create_table('roads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTILINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_roads_district_id_districts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roads'))
    )
    op.create_index(op.f('ix_roads_district_id'), 'roads', ['district_id'], unique=False)
    op.create_index('ix_roads_geom_gist', 'roads', ['geom'], unique=False, postgresql_using='gist')
    op.create_table('streets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_streets_district_id_districts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_streets')),
    sa.UniqueConstraint('district_id', 'code', name=op.f('uq_streets_district_id_code'))
    )
    op.create_index('ix_streets_geom_gist', 'streets', ['geom'], unique=False, postgresql_using='gist')
    op.create_table('communities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('street_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_communities_district_id_districts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['street_id'], ['streets.id'], name=op.f('fk_communities_street_id_streets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_communities')),
    sa.UniqueConstraint('district_id', 'code', name=op.f('uq_communities_district_id_code'))
    )
    op.create_index('ix_communities_geom_gist', 'communities', ['geom'], unique=False, postgresql_using='gist')
    op.create_index(op.f('ix_communities_street_id'), 'communities', ['street_id'], unique=False)
    op.create_table('grid_crosswalk',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('old_code', sa.Text(), nullable=False),
    sa.Column('new_code', sa.Text(), nullable=False),
    sa.Column('shared_area_m2', sa.Float(), nullable=False),
    sa.Column('buildings', sa.Integer(), nullable=False),
    sa.Column('households', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['grid_plans.id'], name=op.f('fk_grid_crosswalk_plan_id_grid_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grid_crosswalk')),
    sa.UniqueConstraint('plan_id', 'old_code', 'new_code', name=op.f('uq_grid_crosswalk_plan_id_old_code_new_code'))
    )
    op.create_table('grids',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_grids_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['plan_id'], ['grid_plans.id'], name=op.f('fk_grids_plan_id_grid_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grids')),
    sa.UniqueConstraint('plan_id', 'code', name=op.f('uq_grids_plan_id_code'))
    )
    op.create_index(op.f('ix_grids_community_id'), 'grids', ['community_id'], unique=False)
    op.create_index('ix_grids_geom_gist', 'grids', ['geom'], unique=False, postgresql_using='gist')
    op.create_table('buildings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('building_id', sa.Text(), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('households', sa.Integer(), nullable=False),
    sa.Column('residents', sa.Integer(), nullable=True),
    sa.Column('floors', sa.Integer(), nullable=True),
    sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=True),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint('households >= 0', name=op.f('ck_buildings_households_nonnegative')),
    sa.CheckConstraint('residents IS NULL OR residents >= 0', name=op.f('ck_buildings_residents_nonnegative')),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_buildings_district_id_districts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_buildings_grid_id_grids'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_buildings')),
    sa.UniqueConstraint('district_id', 'building_id', name=op.f('uq_buildings_district_id_building_id'))
    )
    op.create_index('ix_buildings_geom_gist', 'buildings', ['geom'], unique=False, postgresql_using='gist')
    op.create_index(op.f('ix_buildings_grid_id'), 'buildings', ['grid_id'], unique=False)
    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('subcategory', sa.Text(), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=32), server_default='reported', nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=True),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_reports_district_id_districts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_reports_grid_id_grids'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('district_id', 'report_id', name=op.f('uq_reports_district_id_report_id'))
    )
    op.create_index('ix_reports_geom_gist', 'reports', ['geom'], unique=False, postgresql_using='gist')
    op.create_index(op.f('ix_reports_grid_id'), 'reports', ['grid_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_reports_grid_id'), table_name='reports')
    op.drop_index('ix_reports_geom_gist', table_name='reports', postgresql_using='gist')
    op.drop_table('reports')
    op.drop_index(op.f('ix_buildings_grid_id'), table_name='buildings')
    op.drop_index('ix_buildings_geom_gist', table_name='buildings', postgresql_using='gist')
    op.drop_table('buildings')
    op.drop_index('ix_grids_geom_gist', table_name='grids', postgresql_using='gist')
    op.drop_index(op.f('ix_grids_community_id'), table_name='grids')
    op.drop_table('grids')
    op.drop_table('grid_crosswalk')
    op.drop_index(op.f('ix_communities_street_id'), table_name='communities')
    op.drop_index('ix_communities_geom_gist', table_name='communities', postgresql_using='gist')
    op.drop_table('communities')
    op.drop_index('ix_streets_geom_gist', table_name='streets', postgresql_using='gist')
    op.drop_table('streets')
    op.drop_index('ix_roads_geom_gist', table_name='roads', postgresql_using='gist')
    op.drop_index(op.f('ix_roads_district_id'), table_name='roads')
    op.drop_table('roads')
    op.drop_table('grid_teams')
    op.drop_index('uq_grid_plans_one_published', table_name='grid_plans', postgresql_where=sa.text("status = 'published'"))
    op.drop_index(op.f('ix_grid_plans_district_id'), table_name='grid_plans')
    op.drop_table('grid_plans')
    op.drop_index('ix_districts_geom_gist', table_name='districts', postgresql_using='gist')
    op.drop_table('districts')
    # drop_table leaves the enum type behind; the next upgrade would fail on it.
    sa.Enum(name='plan_status').drop(op.get_bind(), checkfirst=True)
