"""Upstream backends: the pooled HTTP client and its fallback attempts, model discovery,
detection of local servers, and the reasoning dialects."""
