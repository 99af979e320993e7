"""Every line that talks to Kafka for content: client configuration and the live loop."""

from worker.consumers.live import LiveWorker

__all__ = ["LiveWorker"]
