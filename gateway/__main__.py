"""`python -m gateway`: the gateway with settings from ATS_* variables."""

from gateway.server import run
from shared.config import CommonSettings
from shared.logging import configure_logging

common = CommonSettings()
configure_logging(level=common.log_level, json=common.log_json, service="gateway")
run()
