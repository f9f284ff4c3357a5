"""Package data the platform ships and the user may replace (see each file's header)."""
