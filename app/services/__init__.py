"""Use cases: the only code that writes."""
