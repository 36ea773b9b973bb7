"""The Prometheus metrics every process keeps: the counters and histograms the code that sees a
fact increments, and the gauges read when `/metrics` is scraped.

One set per process, in prometheus-client's default registry (which adds the process's own CPU,
memory and file descriptors): each process serves its own `/metrics`, and Prometheus adds them
up. Label values come from short fixed lists, never from a topic, an address or a request id.
Each increment costs a lock and an addition, well under a microsecond: the engine counts every
send with them.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# A `_created` series beside every counter doubles what Prometheus stores, for a start time it
# can tell from the process's own `process_start_time_seconds`.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

# -- sending (worker processes) ----------------------------------------------------------------

EMAILS_SENT = Counter("ses_sender_emails_sent", "Emails the provider accepted.")
EMAILS_FAILED = Counter(
    "ses_sender_emails_failed",
    "Emails given up on (marked Failed): refused for good, or out of attempts.",
    ["kind"],
)
EMAILS_FAILED_PERMANENT = EMAILS_FAILED.labels("permanent")
EMAILS_FAILED_ATTEMPTS = EMAILS_FAILED.labels("attempts_exhausted")
SEND_FAILURES = Counter(
    "ses_sender_send_failures",
    "Sends that did not go out, by what the queue does about them: transient (retried with "
    "backoff), permanent, account_paused (all sending paused). Throttles are counted apart.",
    ["kind"],
)
THROTTLES = Counter("ses_sender_throttles", "Sends the provider refused as over its rate.")
RATE_BACKOFFS = Counter(
    "ses_sender_rate_backoffs", "Times this worker lowered the shared rate after a throttle."
)
SEND_DURATION = Histogram(
    "ses_sender_send_duration_seconds",
    "How long the provider took to answer one send (accepted or not).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EMAILS_IN_FLIGHT = Gauge(
    "ses_sender_emails_in_flight",
    "Emails this worker holds between taking them to send and writing their outcome.",
)
IN_FLIGHT_LIMIT = Gauge(
    "ses_sender_in_flight_limit",
    "The most emails this worker keeps in flight now (follows the rate and SES's latency).",
)
PACED_RATE = Gauge(
    "ses_sender_paced_rate_emails_per_second", "The rate in force: the target less any back-off."
)
TARGET_RATE = Gauge(
    "ses_sender_target_rate_emails_per_second",
    "EMAIL_RATE, capped by the account's MaxSendRate less RATE_HEADROOM.",
)
RATE_BACKOFF = Gauge(
    "ses_sender_rate_backoff_ratio",
    "Share of the target rate held back after throttles: 0 at full rate, 0.5 halved.",
)

# -- the database, read at most once per refresh interval -------------------------------------

QUEUE_DEPTH = Gauge(
    "ses_sender_queue_depth",
    "Emails not sent yet: queued (due or scheduled), held (their topic is paused), processing "
    "(claimed by a worker).",
    ["status"],
)
SENDING_PAUSED = Gauge(
    "ses_sender_sending_paused",
    "1 while all sending is paused for this reason (guardrail, account).",
    ["reason"],
)
WEBHOOK_BACKLOG = Gauge(
    "ses_sender_webhook_backlog", "Webhook deliveries waiting for their first try or a retry."
)

# -- SNS (API processes) -----------------------------------------------------------------------

SNS_MESSAGES = Counter(
    "ses_sender_sns_messages",
    "Verified SNS messages, by SNS type and what became of them (ok: stored, duplicate, "
    "ignored: SES's test notification, confirmed, noted).",
    ["type", "outcome"],
)
SNS_VERIFICATION_FAILURES = Counter(
    "ses_sender_sns_verification_failures",
    "SNS messages not taken: rejected (forged, stale, malformed or from an untrusted topic: "
    "400) or retry (the certificate or the trusted topics could not be read yet: 503).",
    ["kind"],
)

# -- webhooks (worker processes) ---------------------------------------------------------------

WEBHOOK_ATTEMPTS = Counter(
    "ses_sender_webhook_attempts", "Webhook POSTs, by outcome: delivered or failed.", ["outcome"]
)
WEBHOOK_DELIVERED = WEBHOOK_ATTEMPTS.labels("delivered")
WEBHOOK_FAILED = WEBHOOK_ATTEMPTS.labels("failed")
WEBHOOKS_DISABLED = Counter(
    "ses_sender_webhooks_disabled", "Webhooks disabled after a day of failed deliveries."
)

# -- HTTP (API processes) ----------------------------------------------------------------------

DATABASE_UNAVAILABLE = Counter(
    "ses_sender_database_unavailable",
    "Database outages met by the API: requests answered 503, health checks failed, opens and "
    "clicks lost.",
    ["at"],
)

HTTP_DURATION = Histogram(
    "ses_sender_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def watch_engine(
    *,
    in_flight: Callable[[], float],
    in_flight_limit: Callable[[], float],
    paced_rate: Callable[[], float],
    target_rate: Callable[[], float],
) -> None:
    """Read the engine's gauges from its own objects when scraped: nothing per send."""
    EMAILS_IN_FLIGHT.set_function(in_flight)
    IN_FLIGHT_LIMIT.set_function(in_flight_limit)
    PACED_RATE.set_function(paced_rate)
    TARGET_RATE.set_function(target_rate)
    RATE_BACKOFF.set_function(lambda: 1.0 - paced_rate() / target_rate())
