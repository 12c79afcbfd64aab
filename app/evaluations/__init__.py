"""evaluations domain."""
