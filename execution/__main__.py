from execution.cli import app

app(prog_name="python -m execution")
