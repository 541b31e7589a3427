"""The read-only web dashboard at `/ui/`: its routes (`routes.py`) and static page (`static/`)."""
