"""Privacy: per-customer keys that seal personal data, and erasure by destroying them (issue 21)."""
