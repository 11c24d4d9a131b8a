"""Airflow plugin: dbsplit's migration reports in the Airflow UI (the app lives in dbsplit.airflow.reports_app).

- fastapi_apps: the reports app on the API server under /dbsplit-reports/ (it checks the Airflow
  login itself: Airflow does not protect plugin apps);
- external_views: "Migration reports" in the navigation, and a "Migration report" tab on every
  DAG run, both shown inside the UI.
"""

from airflow.plugins_manager import AirflowPlugin

from dbsplit.airflow.reports_app import PREFIX, app, external_views


class DbsplitReportsPlugin(AirflowPlugin):
    name = "dbsplit_reports"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "dbsplit migration reports"}]
    external_views = external_views()
