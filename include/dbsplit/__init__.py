"""dbsplit: split a monolithic PostgreSQL database into per-service databases through Airflow."""

__version__ = "0.1.0"
