"""`python -m trading_groups algo ...`."""

from trading_groups.cli import app

app()
