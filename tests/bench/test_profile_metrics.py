"""`bench.profile` reads counters off the processes' Prometheus pages: every series counts,
whatever its labels hold."""

from __future__ import annotations

from bench.profile import metric_sum

COUNT = "vaultcraft_http_request_duration_seconds_count"
PAGE = "\n".join(
    [
        "# HELP vaultcraft_http_request_duration_seconds Time to answer.",
        "# TYPE vaultcraft_http_request_duration_seconds histogram",
        COUNT + '{method="POST",route="/api/v1/transactions/transfer"} 20000.0',
        COUNT + '{method="GET",route="/api/v1/transactions/{transaction_id}"} 312.0',
        COUNT + '{method="GET",route="/api/v1/wallets/{wallet_id}/entries"} 5.0',
        COUNT + '{method="GET",route="a \\"quoted}\\" name"} 1.0',
        COUNT + " 7.0",
        'vaultcraft_http_request_duration_seconds_sum{method="POST",route="/x"} 99.0',
    ]
)


def test_a_series_whose_labels_hold_braces_is_counted() -> None:
    assert metric_sum(PAGE, COUNT) == 20325.0


def test_only_the_series_whose_labels_contain_the_label_are_summed() -> None:
    assert metric_sum(PAGE, COUNT, 'method="GET"') == 318.0
    assert metric_sum(PAGE, COUNT, "{transaction_id}") == 312.0


def test_another_metric_sharing_the_prefix_is_not_counted() -> None:
    assert metric_sum(PAGE, "vaultcraft_http_request_duration_seconds") == 0.0
