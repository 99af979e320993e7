"""Test topics are deleted by prefix, so a long-lived broker does not collect them."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient

from tests.kafka_support import create_topics, delete_topics_under, unique_prefix


def _topics(bootstrap: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics)


def test_only_the_topics_under_the_given_prefixes_are_deleted(kafka_bootstrap: str) -> None:
    mine, other = unique_prefix(), unique_prefix()
    create_topics(kafka_bootstrap, [f"{mine}.events", f"{mine}.labels", f"{other}.events"], 1)
    deleted = delete_topics_under(kafka_bootstrap, [mine])
    assert deleted == [f"{mine}.events", f"{mine}.labels"]
    deadline = time.monotonic() + 60
    while {f"{mine}.events", f"{mine}.labels"} & _topics(kafka_bootstrap):
        assert time.monotonic() < deadline, "deleted topics are still listed"
        time.sleep(0.5)
    assert f"{other}.events" in _topics(kafka_bootstrap)
    assert delete_topics_under(kafka_bootstrap, []) == []
    assert delete_topics_under(kafka_bootstrap, [unique_prefix()]) == []  # nothing under it
