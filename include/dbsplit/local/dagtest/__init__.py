"""The internals of the local dag.test() runner; its entry point is dbsplit.local.airflow_local.

settings (the child's Airflow environment), results (what comes back), capture (task errors and log
tails), metadata (database, parse and sync), dagrun (one dag.test() run), pump (triggered runs),
child (the child process). Only child, pump, metadata and dagrun import Airflow, and only inside
functions: importing any module here costs no Airflow import.
"""
