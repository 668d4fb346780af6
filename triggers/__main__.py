"""`python -m triggers KIND --symbol ... --feed ...`."""

from triggers.cli import app

app()
