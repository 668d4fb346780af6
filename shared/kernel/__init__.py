"""The kernel: pure decision, risk, fill and accounting code that the live services and
the backtester run unchanged. No I/O and no clock of its own (an import-linter contract
in pyproject.toml keeps it that way)."""
