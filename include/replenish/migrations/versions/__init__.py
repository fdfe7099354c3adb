"""Alembic revisions (a package only so that wheels and editable installs ship them)."""
