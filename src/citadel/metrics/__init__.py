"""Prometheus metrics: what Citadel records (``registry``), where (``instrument``), how it is scraped
(``scrape``: ``GET /metrics``) and how forked workers share it (``multiprocess``).

Only the registry is imported here: the stores record into it, and must not import the HTTP layer with it.
"""

from citadel.metrics.registry import Metrics, exposition, metrics

__all__ = ["Metrics", "exposition", "metrics"]
