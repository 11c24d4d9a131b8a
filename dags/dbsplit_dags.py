"""Airflow DAG file: register dbsplit's DAGs for every plan in $DBSPLIT_PLANS (default: the jobboard example).

(Airflow's safe-mode discovery only parses files that mention both "airflow" and "dag".)
"""

from dbsplit.airflow.dagfactory import build_dags

globals().update(build_dags())
