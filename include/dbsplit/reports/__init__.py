"""Validation reports: evidence files written by the validate tasks, pages served in the Airflow UI."""
