"""Sending: the pre-flight, one request per row under the token bucket with one retry policy,
the journal that makes crashes and reruns harmless, and the run's one ``Stop``."""
