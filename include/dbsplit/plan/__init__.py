"""Migration plans: pydantic models, YAML loading with precise error locations, checks and service order."""

from dbsplit.plan.load import load_plan, read_plan
from dbsplit.plan.models import Plan, Service, TableRoute
from dbsplit.plan.order import ServiceCycleError, migration_levels

__all__ = ["Plan", "Service", "ServiceCycleError", "TableRoute", "load_plan", "migration_levels", "read_plan"]
