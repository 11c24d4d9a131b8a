"""The internals of the local dag.test() runner; its entry point is dbsplit.local.airflow_local.

settings (the child's Airflow environment), results (what comes back), capture (task errors and log
tails), metadata (database, parse and sync), dagrun (one dag.test() run), pump (triggered runs),
child (the child process). Airflow is imported only inside the functions that the child and the pump
run: importing any module here imports no Airflow.
"""
