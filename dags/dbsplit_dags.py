"""Register dbsplit's DAGs for every plan named in $DBSPLIT_PLANS (default: the jobboard example)."""

from dbsplit.dagfactory import build_dags

globals().update(build_dags())
