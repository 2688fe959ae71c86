"""The observer: the event writer and its live subscribers, each request's record, and the
readers of the log (`sparks events`, `sparks activity`)."""
