"""Exchange adapters: one interface (`base.ExchangeAdapter`), a registry and a factory."""

from execution.adapters.base import (
    AccountSpec,
    Balance,
    Capabilities,
    Credentials,
    ExchangeAdapter,
    FillReport,
    OrderReport,
    OrderRequest,
    PositionReport,
    adapter_class,
    create_adapter,
    register_adapter,
    registered_adapters,
)

__all__ = [
    "AccountSpec",
    "Balance",
    "Capabilities",
    "Credentials",
    "ExchangeAdapter",
    "FillReport",
    "OrderReport",
    "OrderRequest",
    "PositionReport",
    "adapter_class",
    "create_adapter",
    "register_adapter",
    "registered_adapters",
]
