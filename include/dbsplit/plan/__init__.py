"""Migration plans: pydantic models and YAML loading with precise error locations."""

from dbsplit.plan.load import load_plan
from dbsplit.plan.models import Plan, Service, TableRoute

__all__ = ["Plan", "Service", "TableRoute", "load_plan"]
