"""The docker compose stack, checked without Docker (there may be no engine to run it).

docker-compose.yaml is read with PyYAML (merge keys resolved) and its ${VARIABLES} are filled from
.env.example, as `cp .env.example .env && docker compose up` would: every connection of every plan
the stack serves must reach a database container made with the same credentials, every Airflow
service must run the one image of docker/Dockerfile whose base matches the Airflow pin, secrets must
come from .env only. The jobboard monolith's init script is compared with dbsplit.local.samples, and one
integration test runs it against a real PostgreSQL.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "docker" / "Dockerfile.dockerignore"
CELERY_REQUIREMENTS = ROOT / "docker" / "requirements-celery.txt"
MONOLITH_INIT = ROOT / "docker" / "monolith-init" / "10-jobboard-sample.sh"
MONOLITH_HEALTHCHECK = ROOT / "docker" / "monolith-init" / "healthcheck.sh"
NEW_ENV = ROOT / "docker" / "new-env.py"

# Plans that the stack must serve; others in include/examples/ may be added to DBSPLIT_PLANS.
REQUIRED_PLANS = {"jobboard"}
PROJECT_MOUNTS = {"dags": "/opt/airflow/dags", "plugins": "/opt/airflow/plugins",
                  "include": "/opt/airflow/include", "expectations": "/opt/airflow/expectations"}
STAGING_URL, REPORTS_DIR = "file:///opt/dbsplit/staging", "/opt/dbsplit/reports"
AIRFLOW_ROLES = ("api-server", "scheduler", "dag-processor", "triggerer")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt}, $NAME
_VARIABLE = re.compile(r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                       r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|FERNET|TOKEN|PRIVATE|(^|_)(KEY|AUTH)$")
_PATHLIKE_NAME = re.compile(r"_(FILE|PATH|CMD|DIR)$")


# ------------------------------------------------------------------ reading the files


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        f"{COMPOSE_FILE.name}: expected a mapping with `services`")
    return data


@cache
def env_example() -> dict[str, str]:
    """NAME=value lines of .env.example (compose's .env format, without quoting or inline comments)."""
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), (
            f".env.example:{number}: expected NAME=value, got {line!r}")
        assert name not in values, f".env.example:{number}: {name} is defined twice"
        assert not value.startswith(("'", '"')) and " #" not in value, (
            f".env.example:{number}: write {name}'s value unquoted and without a comment")
        values[name] = value
    return values


def interpolate(text: str, env: dict[str, str], where: str = "") -> str:
    """Fill ${...} the way docker compose does; `$$` is a literal `$`."""
    def one(match: re.Match[str]) -> str:
        name = match["name"] or match["bare"]
        op, arg, value = match["op"], match["arg"], env.get(name)
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if op in (":?", "?"):
            if not (value if op == ":?" else value is not None):
                raise AssertionError(f"{where}: required variable {name} is missing ({arg})")
            return value
        if op in (":+", "+"):
            return arg if (value if op == ":+" else value is not None) else ""
        return value or ""

    parts = text.split("$$")
    filled = [_VARIABLE.sub(one, part) for part in parts]
    for part in filled:
        assert "${" not in part, f"{where}: malformed variable reference in {text!r}"
    return "$".join(filled)


def references(text: str) -> Iterator[re.Match[str]]:
    for part in text.split("$$"):
        yield from _VARIABLE.finditer(part)


def marked(text: str) -> str:
    """text with each reference that has no fallback replaced by %%NAME%%, and each one with a fallback
    by that fallback (a literal that ends up in the container when the variable is unset)."""
    def one(match: re.Match[str]) -> str:
        if match["op"] in (":-", "-", ":+", "+"):
            return match["arg"]
        return f"%%{match['name'] or match['bare']}%%"
    return "$".join(_VARIABLE.sub(one, part) for part in text.split("$$"))


def walk_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every key and scalar of a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}".lstrip("."), str(key)
            yield from walk_strings(value, f"{path}.{key}".lstrip("."))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_strings(value, f"{path}[{i}]")
    elif node is not None:
        yield path, str(node)


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def resolved_env(name: str) -> dict[str, str]:
    return {k: interpolate(v, env_example(), f"services.{name}.environment.{k}")
            for k, v in environment(services()[name]).items()}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command") or ""
    return " ".join(command) if isinstance(command, list) else str(command)


def airflow_services() -> dict[str, dict[str, Any]]:
    """Services configured as Airflow components: any AIRFLOW__ setting in their environment."""
    found = {name: svc for name, svc in services().items()
             if any(key.startswith("AIRFLOW__") for key in environment(svc))}
    assert found, "docker-compose.yaml has no service with AIRFLOW__ settings"
    return found


def worker_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in airflow_services().items()
            if re.search(r"\bcelery\s+worker\b", command_text(svc))}


def active_profiles() -> set[str]:
    return {p.strip() for p in env_example().get("COMPOSE_PROFILES", "").split(",") if p.strip()}


def is_active(service: dict[str, Any]) -> bool:
    profiles = service.get("profiles") or []
    return not profiles or bool(set(profiles) & active_profiles())


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Volumes of a service as {type, source, target, read_only}, short syntax parsed."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result.append({"type": volume.get("type"), "source": volume.get("source"),
                           "target": volume.get("target"), "read_only": bool(volume.get("read_only"))})
            continue
        parts = str(volume).split(":")
        source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        kind = "volume" if source is None or not source.startswith((".", "/", "~")) else "bind"
        result.append({"type": kind, "source": source, "target": target,
                       "read_only": len(parts) > 2 and "ro" in parts[2].split(",")})
    return result


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The file in the repository that a bind mount shows at container_path, if any."""
    best: tuple[int, Path] | None = None
    for m in mounts(service):
        target = PurePosixPath(m["target"])
        path = PurePosixPath(container_path)
        if m["type"] == "bind" and (path == target or target in path.parents):
            candidate = (ROOT / m["source"]).resolve() / path.relative_to(target)
            if best is None or len(target.parts) > best[0]:
                best = (len(target.parts), candidate)
    return best[1] if best else None


def image_major(image: str) -> int:
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?postgres:(\d+)(?:[.\-].*)?", image)
    assert match, f"expected a postgres:<major> image, got {image!r}"
    return int(match[1])


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, sep, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", re.sub(r"\[.*\]", "", name)).lower()] = version if sep else ""
    return pins


def served_plans() -> dict[str, tuple[str, Path]]:
    """Plans in DBSPLIT_PLANS of the Airflow services: plan name -> (path in the container, file)."""
    name, service = next(iter(sorted(airflow_services().items())))
    raw = resolved_env(name).get("DBSPLIT_PLANS", "")
    assert raw, f"services.{name}: DBSPLIT_PLANS is not set, so the stack serves no plan"
    plans = {}
    for container_path in filter(None, raw.split(":")):
        file = host_path(service, container_path)
        assert file is not None and file.is_file(), (
            f"DBSPLIT_PLANS names {container_path}, which no bind mount of services.{name} shows from the "
            "repository. Fix: point it into a mounted folder such as /opt/airflow/include/examples/.")
        plan = yaml.safe_load(file.read_text(encoding="utf-8"))
        plans[str(plan["name"])] = (container_path, file)
    return plans


def conn_ids(node: Any) -> list[str]:
    """Every `conn_id` value in a plan document, in order, without duplicates."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += [str(value)] if key == "conn_id" and isinstance(value, str) else conn_ids(value)
    elif isinstance(node, list):
        for value in node:
            found += conn_ids(value)
    return list(dict.fromkeys(found))


def plan_connections() -> list[tuple[str, str, str]]:
    """(plan name, conn_id, role) for every connection of every served plan; role source or target."""
    rows = []
    for plan_name, (_, file) in sorted(served_plans().items()):
        plan = yaml.safe_load(file.read_text(encoding="utf-8"))
        source = plan["source"]["conn_id"]
        rows += [(plan_name, cid, "source" if cid == source else "target") for cid in conn_ids(plan)]
    return rows


def connection(conn_id: str, service_name: str) -> dict[str, Any]:
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    value = resolved_env(service_name).get(variable)
    assert value, f"services.{service_name}: {variable} is not set"
    if value.lstrip().startswith("{"):
        return json.loads(value)
    from urllib.parse import unquote, urlsplit  # the URI form of an Airflow connection
    url = urlsplit(value)
    return {"conn_type": url.scheme, "host": url.hostname, "port": url.port, "login": unquote(url.username or ""),
            "password": unquote(url.password or ""), "schema": unquote(url.path.lstrip("/"))}


# ------------------------------------------------------------------ variables and secrets


def test_every_variable_of_the_compose_file_is_defined_in_env_example() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    used = {m["name"] or m["bare"] for m in references(text)}
    missing = sorted(used - set(env_example()))
    assert not missing, (f"docker-compose.yaml uses {', '.join(missing)}, which .env.example does not define: "
                         "`cp .env.example .env` would leave them empty. Fix: add them to .env.example.")


def test_env_example_defines_only_what_the_stack_uses() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    used = {m["name"] or m["bare"] for m in references(text)}
    unused = sorted(n for n in set(env_example()) - used if not n.startswith("COMPOSE_"))
    assert not unused, f".env.example defines {', '.join(unused)}, which docker-compose.yaml never uses"


def test_defaults_in_the_compose_file_agree_with_env_example() -> None:
    for match in references(COMPOSE_FILE.read_text(encoding="utf-8")):
        if match["op"] in (":-", "-") and match["name"] in env_example():
            assert match["arg"] == env_example()[match["name"]], (
                f"docker-compose.yaml defaults {match['name']} to {match['arg']!r} but .env.example sets "
                f"{env_example()[match['name']]!r}. Fix: make them equal.")


def test_compose_file_interpolates_with_env_example() -> None:
    for path, text in walk_strings(compose()):
        interpolate(text, env_example(), path)


def _secret_reference(text: str) -> bool:
    """True when text is exactly one ${VAR} (or ${VAR:?error}) with no default to fall back on."""
    match = _VARIABLE.fullmatch(text.strip())
    return bool(match) and (match["op"] or "") in ("", ":?", "?")


def test_no_secret_literal_in_the_compose_file() -> None:
    problems = []
    for name, svc in services().items():
        for key, value in environment(svc).items():
            if _SECRET_NAME.search(key.upper()) and not _PATHLIKE_NAME.search(key.upper()):
                if value and not _secret_reference(value):
                    problems.append(f"services.{name}.environment.{key} = {value!r}")
    placeholder = re.compile(r"%%[A-Za-z_][A-Za-z0-9_]*%%")
    for path, text in walk_strings(compose()):
        plain = marked(text)
        for m in re.finditer(r"://[^:/@\s'\"]*:(?P<pw>[^@\s'\"]*)@", plain):
            if not placeholder.fullmatch(m["pw"]):
                problems.append(f"{path}: password {m['pw']!r} in a URL")
        for m in re.finditer(r"\"(?:password|passwd|secret|token)\"\s*:\s*\"(?P<pw>[^\"]*)\"", plain, re.I):
            if m["pw"] and not placeholder.fullmatch(m["pw"]):
                problems.append(f"{path}: \"password\": {m['pw']!r}")
        for m in re.finditer(r"(?<!\S)(?:--requirepass|--password|-a)\s+(?P<pw>\S+)", text):
            if not m["pw"].strip("'\"").startswith("$"):
                problems.append(f"{path}: {m[0]!r}")
        for m in references(text):
            if _SECRET_NAME.search(m["name"] or m["bare"]) and m["op"] in (":-", "-", ":+", "+") and m["arg"]:
                problems.append(f"{path}: {m[0]!r} has a secret fallback")
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    for var, value in env_example().items():
        if _SECRET_NAME.search(var) and len(value) >= 6 and value in raw:
            problems.append(f"the value of {var} from .env.example is written into docker-compose.yaml")
    assert not problems, ("secrets must come from .env through ${VARIABLE}s only:\n  " + "\n  ".join(problems))


def test_new_env_script_replaces_every_secret(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    run = subprocess.run([sys.executable, str(NEW_ENV), str(target)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    fresh = dict(line.split("=", 1) for line in target.read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert set(fresh) == set(env_example())
    for name, value in env_example().items():
        if re.search(r"(_PASSWORD|_SECRET|_SECRET_KEY|_FERNET_KEY)$", name):
            assert fresh[name] != value and re.fullmatch(r"[A-Za-z0-9_=-]{32,}", fresh[name]), name
        else:
            assert fresh[name] == value, name
    import base64
    assert len(base64.urlsafe_b64decode(fresh["AIRFLOW_FERNET_KEY"])) == 32
    again = subprocess.run([sys.executable, str(NEW_ENV), str(target)], capture_output=True, text=True, check=False)
    assert again.returncode == 1 and "not overwritten" in again.stderr


def test_fernet_key_of_env_example_is_valid() -> None:
    import base64
    assert len(base64.urlsafe_b64decode(env_example()["AIRFLOW_FERNET_KEY"])) == 32, (
        "AIRFLOW_FERNET_KEY must be 32 bytes in url-safe base64, or Airflow cannot encrypt connections")


# ------------------------------------------------------------------ the Airflow image and services


def test_every_airflow_service_runs_the_image_built_from_docker_dockerfile() -> None:
    images = set()
    for name, svc in airflow_services().items():
        build = svc.get("build")
        assert isinstance(build, dict), f"services.{name}: no `build`; every Airflow service builds docker/Dockerfile"
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
        assert dockerfile == DOCKERFILE, f"services.{name} builds {dockerfile}, not {DOCKERFILE}"
        assert context == ROOT, f"services.{name}: the build context must be the repository root, not {context}"
        assert svc.get("image"), f"services.{name}: name the built image (`image:`) so that all services share it"
        images.add(svc["image"])
    assert len(images) == 1, f"the Airflow services run different images: {sorted(images)}"


def test_dockerfile_base_image_matches_the_airflow_pin() -> None:
    pinned = requirement_pins(ROOT / "requirements.txt").get("apache-airflow")
    assert pinned, "requirements.txt pins no apache-airflow version"
    text = DOCKERFILE.read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    froms = re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", text, re.M)
    assert froms, "docker/Dockerfile has no FROM"
    base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), froms[-1])
    match = re.fullmatch(r"(?:docker\.io/)?apache/airflow:(?:slim-)?(?P<airflow>[0-9][^-]*)-python(?P<py>[0-9.]+)", base)
    assert match, f"docker/Dockerfile builds on {base!r}; expected apache/airflow:<version>-python<version>"
    assert match["airflow"] == pinned, (
        f"docker/Dockerfile builds on Airflow {match['airflow']} but requirements.txt pins {pinned}. "
        f"Fix: FROM apache/airflow:{pinned}-python{match['py']}.")
    requires = re.search(r'requires-python\s*=\s*"[^"]*?(\d+\.\d+)', (ROOT / "pyproject.toml").read_text())
    assert requires and match["py"] == requires[1], (
        f"the base image has Python {match['py']}, pyproject.toml requires {requires and requires[1]}")


def test_dockerfile_installs_the_pinned_requirements_and_the_project() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    installs = [line for line in text.splitlines() if re.search(r"\bpip install\b", line)]
    assert any(re.search(r"-r \S*requirements\.txt", i) and re.search(r"-c \S*constraints\.txt", i)
               for i in installs), "docker/Dockerfile must pip install -r requirements.txt -c constraints.txt"
    assert any(re.search(r"-r \S*requirements-celery\.txt", i) for i in installs), (
        "docker/Dockerfile must install docker/requirements-celery.txt (the Celery provider for CeleryExecutor)")
    assert any("--no-deps" in i and re.search(r"(-e\s+)?/opt/airflow\s*(&&|$)", i) for i in installs), (
        "docker/Dockerfile must install the project itself with --no-deps from /opt/airflow")


def test_celery_requirements_are_pinned_and_agree_with_constraints() -> None:
    celery = requirement_pins(CELERY_REQUIREMENTS)
    assert "apache-airflow-providers-celery" in celery
    unpinned = sorted(n for n, v in celery.items() if not v)
    assert not unpinned, f"docker/requirements-celery.txt: pin {', '.join(unpinned)} with =="
    locked = requirement_pins(ROOT / "constraints.txt")
    clashes = sorted(f"{n}: {v} vs {locked[n]}" for n, v in celery.items() if n in locked and locked[n] != v)
    assert not clashes, f"docker/requirements-celery.txt disagrees with constraints.txt: {clashes}"


def test_dockerfile_copies_only_files_the_build_context_keeps() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    kept = [line[1:].strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")]
    for line in text.splitlines():
        match = re.match(r"\s*COPY\s+(.*)", line)
        if not match or "--from=" in line:
            continue
        *sources, _ = [a for a in match[1].split() if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"docker/Dockerfile copies {source}, which is not in the repository"
            assert any(source == k or source.startswith(k + "/") for k in kept), (
                f"docker/Dockerfile copies {source}, which docker/Dockerfile.dockerignore leaves out of the "
                f"build context. Fix: add `!{source}` to it.")


def test_executor_is_celery_with_two_workers() -> None:
    for name in airflow_services():
        env = resolved_env(name)
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", f"services.{name}: executor is not CeleryExecutor"
        assert env.get("AIRFLOW__CELERY__BROKER_URL", "").startswith("redis://"), f"services.{name}: no Redis broker"
        assert env.get("AIRFLOW__CELERY__RESULT_BACKEND", "").startswith("db+postgresql"), (
            f"services.{name}: no result backend in the metadata database")
    workers = worker_services()
    assert len(workers) == 2, f"expected two Celery workers, found {sorted(workers)}"
    for name, svc in workers.items():
        replicas = (svc.get("deploy") or {}).get("replicas", 1)
        assert replicas == 1 and svc.get("scale", 1) == 1, f"services.{name}: count workers as services, not replicas"
    hostnames = [svc.get("hostname") for svc in workers.values()]
    assert None not in hostnames and len(set(hostnames)) == 2, f"give each worker its own hostname: {hostnames}"
    broker_host = re.search(r"@([^:/]+)", resolved_env(next(iter(workers)))["AIRFLOW__CELERY__BROKER_URL"])
    assert broker_host and broker_host[1] in services(), "the Celery broker URL names no service of the stack"


def test_every_airflow_component_is_there() -> None:
    commands = {command_text(svc).split()[0] if command_text(svc) else "" for svc in airflow_services().values()}
    for role in AIRFLOW_ROLES:
        assert role in commands, f"no service runs `airflow {role}`"
    inits = [n for n, svc in airflow_services().items() if svc.get("restart") == "no" and not svc.get("healthcheck")]
    assert inits, "no one-shot airflow-init service (restart: \"no\")"
    init_script = (ROOT / "docker" / "airflow-init.sh").read_text(encoding="utf-8")
    assert "airflow db migrate" in init_script, "docker/airflow-init.sh must run `airflow db migrate`"
    assert "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in init_script, "docker/airflow-init.sh must set the admin password"
    for name in inits:
        env = environment(services()[name])
        assert _secret_reference(env.get("AIRFLOW_ADMIN_PASSWORD", "")), f"services.{name}: AIRFLOW_ADMIN_PASSWORD from .env"


def test_the_auth_file_is_shared_by_init_and_api_server() -> None:
    holders = {}
    for name, svc in airflow_services().items():
        path = environment(svc).get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
        if path:
            volume = [m for m in mounts(svc) if m["type"] == "volume" and PurePosixPath(m["target"]) in
                      PurePosixPath(path).parents]
            assert volume, f"services.{name}: {path} is on no named volume"
            holders[name] = volume[0]["source"]
    roles = {command_text(services()[n]).split()[0] if command_text(services()[n]) else "" for n in holders}
    assert "api-server" in roles and len(holders) >= 2, f"init and the API server must share the passwords file: {holders}"
    assert len(set(holders.values())) == 1, f"the passwords file is on different volumes: {holders}"


def test_project_folders_staging_and_reports_are_mounted_in_every_airflow_service() -> None:
    shared = {}
    for name, svc in airflow_services().items():
        ms = mounts(svc)
        for folder, target in PROJECT_MOUNTS.items():
            match = [m for m in ms if m["target"] == target and m["type"] == "bind"
                     and (ROOT / m["source"]).resolve() == ROOT / folder]
            assert match, f"services.{name}: ./{folder} is not mounted at {target}"
        env = resolved_env(name)
        assert env.get("DBSPLIT_STAGING_URL") == STAGING_URL, f"services.{name}: DBSPLIT_STAGING_URL != {STAGING_URL}"
        assert env.get("DBSPLIT_REPORTS_DIR") == REPORTS_DIR, f"services.{name}: DBSPLIT_REPORTS_DIR != {REPORTS_DIR}"
        for path in (STAGING_URL.removeprefix("file://"), REPORTS_DIR):
            covering = [m for m in ms if PurePosixPath(path) == PurePosixPath(m["target"])
                        or PurePosixPath(m["target"]) in PurePosixPath(path).parents]
            assert covering and covering[-1]["type"] == "volume" and covering[-1]["source"], (
                f"services.{name}: {path} must be on a named volume that every worker shares")
            shared.setdefault(path, set()).add(covering[-1]["source"])
    for path, volumes in shared.items():
        assert len(volumes) == 1, f"{path} is on different volumes in different services: {sorted(volumes)}"
        assert next(iter(volumes)) in (compose().get("volumes") or {}), f"declare volume {volumes} at the top level"


def test_the_image_runs_the_mounted_include_folder() -> None:
    """The image installs the project editable from /opt/airflow, so /opt/airflow/include is the code."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    assert re.search(r"pip install[^\n]*--no-deps[^\n]*-e /opt/airflow\b", text), (
        "docker/Dockerfile must `pip install --no-deps -e /opt/airflow` so that the mounted include/ runs")
    assert PROJECT_MOUNTS["include"] == "/opt/airflow/include"


# ------------------------------------------------------------------ dependencies and health


def test_depends_on_uses_conditions_on_healthy_or_finished_services() -> None:
    for name, svc in services().items():
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"services.{name}.depends_on: use the long form with `condition:`"
        for target, spec in depends.items():
            assert target in services(), f"services.{name} depends on unknown service {target}"
            condition = (spec or {}).get("condition")
            assert condition in CONDITIONS - {"service_started"}, (
                f"services.{name}.depends_on.{target}: condition {condition!r}; wait for service_healthy or "
                "service_completed_successfully")
            other = services()[target]
            if condition == "service_healthy":
                assert other.get("healthcheck"), f"services.{target} has no healthcheck, so {name} waits forever"
            else:
                assert other.get("restart") == "no", f"services.{target} is not a one-shot service"
            if other.get("profiles") and set(other["profiles"]) - set(svc.get("profiles") or []):
                assert spec.get("required") is False, (
                    f"services.{name}.depends_on.{target}: {target} is in profile {other['profiles']}; mark the "
                    "dependency `required: false` so that the stack starts without that profile")


def test_airflow_services_wait_for_their_infrastructure() -> None:
    for name, svc in airflow_services().items():
        depends = svc.get("depends_on") or {}
        for infrastructure in ("airflow-db", "redis"):
            assert (depends.get(infrastructure) or {}).get("condition") == "service_healthy", (
                f"services.{name} must wait for {infrastructure} to be healthy")
        if svc.get("restart") != "no":
            inits = [t for t, spec in depends.items() if spec.get("condition") == "service_completed_successfully"]
            assert inits, f"services.{name} must wait for airflow-init to complete"
            assert svc.get("healthcheck"), f"services.{name} has no healthcheck"
    for name in worker_services():
        depends = services()[name]["depends_on"]
        apis = [t for t, spec in depends.items() if command_text(services()[t]).startswith("api-server")]
        assert apis, f"services.{name}: a worker needs the API server (execution API) to be healthy first"


def test_postgres_containers_mount_their_data_where_the_image_keeps_it() -> None:
    for name, svc in services().items():
        if not str(svc.get("image", "")).split(":")[0].endswith("postgres"):
            continue
        expected = "/var/lib/postgresql" if image_major(svc["image"]) >= 18 else "/var/lib/postgresql/data"
        data = [m for m in mounts(svc) if m["type"] == "volume" and m["target"].startswith("/var/lib/postgresql")]
        assert data and data[0]["target"] == expected, (
            f"services.{name} ({svc['image']}): mount its data volume at {expected} (PostgreSQL 18 images "
            "refuse a volume at /var/lib/postgresql/data)")
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        assert re.search(r"(-h|--host)\s+(127\.0\.0\.1|localhost)", test) or "healthcheck" in test, (
            f"services.{name}: check health over TCP; the first start's temporary server answers on the socket")


# ------------------------------------------------------------------ plans and their databases


def test_the_stack_serves_the_required_plans() -> None:
    missing = REQUIRED_PLANS - set(served_plans())
    assert not missing, f"DBSPLIT_PLANS does not serve {sorted(missing)}"


def _connection_params() -> list[Any]:
    try:
        return [pytest.param(*row, id=f"{row[0]}-{row[1]}") for row in plan_connections()]
    except Exception as exc:  # reported by the test rather than as a collection error
        return [pytest.param(None, None, repr(exc), id="unreadable")]


@pytest.mark.parametrize(("plan", "conn_id", "role"), _connection_params())
def test_every_plan_connection_points_at_a_database_container(plan: str, conn_id: str, role: str) -> None:
    if plan is None:
        pytest.fail(f"the plans served by docker-compose.yaml cannot be read: {role}")
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    for name in airflow_services():
        assert variable in environment(services()[name]), (
            f"plan {plan}: connection {conn_id!r} is not defined in services.{name}. Fix: add {variable} "
            "to x-airflow-common's environment.")
    conn = connection(conn_id, next(iter(sorted(airflow_services()))))
    assert conn.get("conn_type") in ("postgres", "postgresql"), f"{variable}: conn_type {conn.get('conn_type')!r}"
    host = conn.get("host")
    assert host in services(), f"{variable}: host {host!r} is no service of docker-compose.yaml (with .env.example)"
    db = services()[host]
    assert is_active(db), f"services.{host} is not started by `docker compose up` with .env.example's COMPOSE_PROFILES"
    db_env = resolved_env(host)
    assert str(conn.get("port") or 5432) == db_env.get("PGPORT", "5432"), f"{variable}: wrong port"
    expected = {"login": db_env.get("POSTGRES_USER", "postgres"), "password": db_env.get("POSTGRES_PASSWORD"),
                "schema": db_env.get("POSTGRES_DB") or db_env.get("POSTGRES_USER", "postgres")}
    for field, value in expected.items():
        assert conn.get(field) == value, (
            f"{variable}: {field} is {conn.get(field)!r} but services.{host} creates {value!r}")
    major = image_major(db["image"])
    if role == "source":
        assert major <= 16, f"services.{host}: the monolith should run an older server, not PostgreSQL {major}"
    else:
        assert major >= 17, f"services.{host}: a service database should run a current server, not PostgreSQL {major}"


@pytest.mark.parametrize("plan", sorted(REQUIRED_PLANS))
def test_each_database_of_a_plan_is_its_own_server(plan: str) -> None:
    name = next(iter(sorted(airflow_services())))
    hosts = {cid: connection(cid, name)["host"] for p, cid, _ in plan_connections() if p == plan}
    assert len(set(hosts.values())) == len(hosts), f"plan {plan}: connections share a server: {hosts}"


def test_airflow_reads_the_connection_variables() -> None:
    """What a task gets: Airflow's own parser, then dbsplit's conninfo."""
    from airflow.models.connection import Connection

    from dbsplit.pg.conn import conninfo_from_airflow

    name = next(iter(sorted(airflow_services())))
    env = resolved_env(name)
    for _, conn_id, _ in plan_connections():
        conn = Connection.from_json(env[f"AIRFLOW_CONN_{conn_id.upper()}"], conn_id=conn_id)
        info = conninfo_from_airflow(conn)
        host = conn.host
        db_env = resolved_env(host)
        assert f"host={host}" in info and f"dbname={db_env['POSTGRES_DB']}" in info, info
        assert conn.port == 5432 and conn.password == db_env["POSTGRES_PASSWORD"]


# ------------------------------------------------------------------ the jobboard monolith


def _monolith_service() -> tuple[str, dict[str, Any]]:
    host = connection("jobboard_monolith", next(iter(sorted(airflow_services()))))["host"]
    return host, services()[host]


def test_monolith_container_fills_the_sample_on_first_start() -> None:
    name, svc = _monolith_service()
    ms = mounts(svc)
    init = [m for m in ms if m["target"].startswith("/docker-entrypoint-initdb.d")
            and (ROOT / m["source"]).resolve() in (MONOLITH_INIT, MONOLITH_INIT.parent)]
    assert init, f"services.{name}: mount docker/monolith-init/{MONOLITH_INIT.name} into /docker-entrypoint-initdb.d"
    env = resolved_env(name)
    sql_dir = env.get("JOBBOARD_SQL_DIR", "/opt/jobboard")
    shown = host_path(svc, sql_dir)
    assert shown == ROOT / "include" / "examples" / "jobboard", (
        f"services.{name}: include/examples/jobboard must be mounted at {sql_dir} (JOBBOARD_SQL_DIR)")
    assert int(env.get("JOBBOARD_ROWS", "0")) >= 1000, f"services.{name}: JOBBOARD_ROWS must be at least 1000"
    test = svc.get("healthcheck", {}).get("test", [])
    checker = next((t for t in test if "healthcheck" in t), None)
    assert checker and host_path(svc, checker) == MONOLITH_HEALTHCHECK, (
        f"services.{name}: its healthcheck must run docker/monolith-init/healthcheck.sh (healthy = sample committed)")


def test_monolith_init_script_matches_dbsplit_samples() -> None:
    from dbsplit.local import samples

    script = MONOLITH_INIT.read_text(encoding="utf-8")
    block = script.split("-- shares: begin", 1)[1].split("-- shares: end", 1)[0]
    rows = re.findall(r"\((\d+), '([^']+)', ([0-9.]+), (\d+)\)", block)
    shares = {table: (float(share), int(minimum)) for _, table, share, minimum in rows}
    assert [int(pos) for pos, *_ in rows] == list(range(1, len(rows) + 1)), "number the shares 1, 2, 3, ..."
    assert list(shares.items()) == list(samples.SAMPLES["jobboard"].items()), (
        "docker/monolith-init/10-jobboard-sample.sh sizes the tables differently from dbsplit.local.samples: "
        f"{shares} vs {samples.SAMPLES['jobboard']}. Fix: copy the shares into the script.")
    settings = dict(re.findall(r"SELECT set_config\('(\w+)', '([^']*)', true\);", script))
    assert settings == samples._SESSION, f"session settings differ from dbsplit.local.samples._SESSION: {settings}"
    order = re.findall(r"^\\i :(\w+)_sql$", script, re.M)
    assert [f"{o}.sql" for o in order] == list(samples.SCRIPTS), f"the scripts run in the order {order}"
    assert f"rows < {samples.MIN_ROWS}" in script, f"the script must refuse fewer than {samples.MIN_ROWS} rows"
    default = getattr(samples, "DEFAULT_ROWS", {}).get("jobboard", 50_000)
    assert f"JOBBOARD_ROWS:-{default}" in script and env_example()["JOBBOARD_ROWS"] == str(default), (
        f"the sample's default size is {default} rows (make demo); use it in the script and .env.example")
    last_table = list(samples.SAMPLES["jobboard"])[-1]
    assert f"public.{last_table}" in MONOLITH_HEALTHCHECK.read_text(encoding="utf-8"), (
        f"healthcheck.sh must wait for the last table of the sample, {last_table}")


def test_shell_scripts_parse() -> None:
    for script in sorted((ROOT / "docker").rglob("*.sh")):
        run = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert run.returncode == 0, f"{script.relative_to(ROOT)}: {run.stderr}"


@pytest.mark.integration
def test_monolith_init_script_builds_the_same_sample_as_create_sample(make_db: Any) -> None:
    """Run the init script with psql as the postgres image would, and compare with create_sample."""
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed (apt-get install postgresql-client)")
    from psycopg.conninfo import conninfo_to_dict

    from dbsplit.local import samples

    rows = 3_000
    by_script, by_python = make_db("compose_init"), make_db("compose_ref")
    params = conninfo_to_dict(by_script)
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "POSTGRES_USER": str(params.get("user", "postgres")),
           "POSTGRES_DB": str(params["dbname"]), "PGHOST": str(params.get("host", "")),
           "PGPORT": str(params.get("port", "5432")), "PGPASSWORD": str(params.get("password", "")),
           "JOBBOARD_ROWS": str(rows), "JOBBOARD_SQL_DIR": str(ROOT / "include" / "examples" / "jobboard")}
    run = subprocess.run(["bash", str(MONOLITH_INIT)], env=env, capture_output=True, text=True, check=False,
                         timeout=300)
    assert run.returncode == 0, f"init script failed:\n{run.stdout}\n{run.stderr}"
    expected = samples.create_sample(by_python, rows=rows)
    assert samples.table_counts(by_script) == expected
    assert samples.table_checksums(by_script) == samples.table_checksums(by_python)
    again = subprocess.run(["bash", str(MONOLITH_INIT)], env=env, capture_output=True, text=True, check=False)
    assert again.returncode != 0 and "already holds jobboard tables" in again.stderr
