"""The observer: the event writer and its live subscribers and listeners, each request's
record, the readers of the log (`sparks events`, `sparks activity`), and the metrics and trace
exporters fed by the events."""
