"""Small helpers for the operations tests: scraping an exposition server."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, token: str | None = None) -> Samples:
    """Every sample at http://127.0.0.1:port/metrics, keyed by name and sorted labels."""
    return scrape_url(f"http://127.0.0.1:{port}/metrics", token)


def scrape_url(url: str, token: str | None = None) -> Samples:
    """Every sample at `url`, sending `token` as the bearer token when given."""
    if not url.startswith("http://"):
        raise ValueError(f"not a local exposition URL: {url}")
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http only, checked above
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - http only, checked above
        text = resp.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
