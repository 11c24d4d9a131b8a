#!/usr/bin/env bash
# airflow-init: the one-shot service that prepares the stack before the other Airflow services
# start (they wait for it with `condition: service_completed_successfully`). It runs as root (to own
# the named volumes) on every `docker compose up` and is safe to repeat:
#   1. `airflow db migrate` creates or upgrades the metadata database;
#   2. the writable volumes (logs, staging, reports, the auth file) belong to the airflow user;
#   3. the admin user of SimpleAuthManager (the auth manager of Airflow 3.3 by default) gets the
#      password AIRFLOW_ADMIN_PASSWORD from .env: SimpleAuthManager reads users from
#      [core] simple_auth_manager_users and their passwords from the JSON file
#      [core] simple_auth_manager_passwords_file, which only airflow-init and the API server mount;
#   4. every plan in DBSPLIT_PLANS is checked (`dbsplit plan check`, the file only), so that a broken
#      plan stops the stack here with file, line and fix instead of in the DAG processor's log.
set -euo pipefail

log() { printf 'airflow-init: %s\n' "$*"; }

: "${AIRFLOW_ADMIN_USER:?is not set. Fix: cp .env.example .env}"
: "${AIRFLOW_ADMIN_PASSWORD:?is not set. Fix: cp .env.example .env}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?is not set in docker-compose.yaml}"

airflow_uid="${AIRFLOW_UID:-$(id -u airflow)}"
passwords_file="$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
reports_dir="${DBSPLIT_REPORTS_DIR:?is not set in docker-compose.yaml}"

log "Airflow $(airflow version 2>/dev/null | tail -n 1)"

writable=("${AIRFLOW_HOME:-/opt/airflow}/logs" "$(dirname "$passwords_file")" "$reports_dir")
if [[ "${DBSPLIT_STAGING_URL:-}" == file://* ]]; then  # local staging; object storage needs no directory
    writable+=("${DBSPLIT_STAGING_URL#file://}")
fi
for dir in "${writable[@]}"; do
    install -d -o "$airflow_uid" -g 0 -m 0775 "$dir"
done

log "migrating the metadata database"
airflow db migrate

log "admin user ${AIRFLOW_ADMIN_USER} (SimpleAuthManager, passwords in ${passwords_file})"
python - "$passwords_file" <<'PY'
import json
import os
import sys

path = sys.argv[1]
user, password = os.environ["AIRFLOW_ADMIN_USER"], os.environ["AIRFLOW_ADMIN_PASSWORD"]
try:
    with open(path, encoding="utf-8") as file:
        passwords = json.loads(file.read().strip() or "{}")
except FileNotFoundError:
    passwords = {}
passwords[user] = password
tmp = f"{path}.tmp"
with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as file:
    file.write(json.dumps(passwords) + "\n")
os.replace(tmp, path)
PY
chown "$airflow_uid:0" "$passwords_file"
chmod 0600 "$passwords_file"

# The file checks only: without AIRFLOW_CONN_* variables `dbsplit plan check` does not compare the
# plan with the source's catalog, since the databases need not be up yet. With them, once the stack
# runs: docker compose exec airflow-scheduler dbsplit plan check PLAN
without_connections=()
while IFS= read -r variable; do
    without_connections+=(-u "$variable")
done < <(compgen -e | grep '^AIRFLOW_CONN_' || true)
IFS=':' read -r -a plans <<< "${DBSPLIT_PLANS:-}"
for plan in "${plans[@]}"; do
    [[ -n "$plan" ]] || continue
    log "checking plan ${plan}"
    env "${without_connections[@]}" dbsplit plan check "$plan"
done

log "handing the writable volumes to uid ${airflow_uid}"
chown -R "$airflow_uid:0" "${writable[@]}"

log "done"
