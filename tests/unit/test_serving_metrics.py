"""The gateway's Prometheus metrics without a cluster: every answer counted by route, application and status."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from backbone.serving.metrics import CountRequests, GatewayMetrics


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, parsed back by prometheus_client: (name, sorted labels) -> value."""
    text = metrics.exposition()[0].decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_every_answer_is_counted_by_route_application_and_status() -> None:
    metrics = GatewayMetrics()
    api = FastAPI()
    api.add_middleware(CountRequests, metrics=metrics)

    @api.post("/v1/search")
    def search(request: Request, application: str = "default") -> dict[str, str]:
        if application == "nope":
            raise HTTPException(404, "unknown")
        request.state.application = application
        return {"ok": application}

    client = TestClient(api)
    for application in ("default", "default", "fast", "nope"):
        client.post(f"/v1/search?application={application}")
    client.get("/wp-login.php")

    samples = _samples(metrics)
    count = "backbone_requests_total"
    assert samples[(count, (("application", "default"), ("route", "/v1/search"), ("status", "200")))] == 2
    assert samples[(count, (("application", "fast"), ("route", "/v1/search"), ("status", "200")))] == 1
    assert samples[(count, (("application", ""), ("route", "/v1/search"), ("status", "404")))] == 1
    assert samples[(count, (("application", ""), ("route", "other"), ("status", "404")))] == 1
    assert samples[("backbone_request_seconds_count", (("route", "/v1/search"),))] == 4
    assert sum(value for (name, _), value in samples.items() if name == count) == 5


def test_a_scrape_holds_degraded_answers_and_the_release_version() -> None:
    metrics = GatewayMetrics()
    metrics.degraded.labels(application="search", reason="timeout").inc()
    metrics.release_version.labels(release="stard-mini").set(3)
    samples = _samples(metrics)
    assert samples[("backbone_degraded_answers_total", (("application", "search"), ("reason", "timeout")))] == 1
    assert samples[("backbone_release_version", (("release", "stard-mini"),))] == 3
    assert metrics.exposition()[1].startswith("text/plain; version=")
