"""Prometheus metrics of one gateway app, in its own registry (tests run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "ats_connections", "Live WebSocket sessions by role.", ["role"], registry=r
        )
        self.frames_in = Counter(
            "ats_frames_in_total",
            "Frames accepted from clients by category.",
            ["category"],
            registry=r,
        )
        self.frames_out = Counter(
            "ats_frames_out_total",
            "Events handed to clients by category.",
            ["category"],
            registry=r,
        )
        self.rejected = Counter(
            "ats_frames_rejected_total", "Frames refused, by reason.", ["reason"], registry=r
        )
        self.disconnects = Counter(
            "ats_disconnects_total",
            "Sessions closed by the gateway, by reason.",
            ["reason"],
            registry=r,
        )
        self.persist_seconds = Histogram(
            "ats_persist_seconds",
            "Time to commit one batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.persist_batch_size = Histogram(
            "ats_persist_batch_size",
            "Frames per committed batch.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.route_seconds = Histogram(
            "ats_route_seconds",
            "Time to route one committed batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.replayed = Counter(
            "ats_replayed_events_total", "Events sent again on reconnect.", registry=r
        )
