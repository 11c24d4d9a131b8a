"""Validation of migrated tables (Great Expectations checks run as SQL inside the target database)."""
