"""main.py under the Databricks Apps emulator: who the app sees for each way an app is called.

The emulator starts the app as the platform does, behind its Apps proxy, and writes URLs and credentials to its state
file; the test reads them from there, calls the app through the proxy, and checks the X-Forwarded-* identity the app
saw. From the repository's root, with an interpreter that has fastapi, uvicorn, requests and pytest:

    python3 -m pytest examples/fastapi

It builds the emulator and the caller with Go, unless EMULATOR and CALLER name binaries (`make test` builds them once).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def go_binary(variable, package, out_dir):
    if os.environ.get(variable):
        return str(Path(os.environ[variable]).resolve())
    out = out_dir / Path(package).name
    subprocess.run(["go", "build", "-o", str(out), package], cwd=ROOT, check=True, timeout=600)
    return str(out)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """The emulator with this app as api-app and `callapp serve` as caller-app; yields the state file's contents."""
    tmp = tmp_path_factory.mktemp("emulator")
    emulator_bin = go_binary("EMULATOR", "./emulator", tmp)
    caller_bin = go_binary("CALLER", "./caller", tmp)
    # caller-app calls its target-app resource, api-app, as its own service principal: the third way in.
    caller_yaml = tmp / "caller-app.yaml"
    caller_yaml.write_text(json.dumps({"command": [caller_bin, "serve"],
                                       "env": [{"name": "TARGET_APP", "valueFrom": "target-app"}]}))
    state_file = tmp / "state.json"
    log = open(tmp / "emulator.log", "wb")
    # Your own Databricks credentials stay out of it. The emulator replaces $DATABRICKS_APP_PORT: no shell here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    # pytest stopped with SIGTERM still runs the teardown below, so the emulator does not outlive it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    proc = subprocess.Popen(
        [emulator_bin, "run", "--fresh", "--state", str(state_file),
         "--app", "caller-app", "--app-yaml", str(caller_yaml),
         "--app", "api-app", "--", sys.executable, str(HERE / "main.py")],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not state_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start:\n" + (tmp / "emulator.log").read_text()[-3000:])
            time.sleep(0.1)
        state = json.loads(state_file.read_text())
        state["env"] = env
        state["caller_bin"] = caller_bin
        state["log"] = tmp / "emulator.log"
        yield state
    finally:
        proc.send_signal(signal.SIGTERM)  # the emulator stops the apps, as the platform does, then itself
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def user_token(state):
    """The signed-in user's token, as the caller's local mode gets it: the CLI profile's `databricks auth token`."""
    out = subprocess.run([state["cli_path"], "auth", "token", "--profile", state["profile"]],
                         env={**state["env"], "DATABRICKS_CONFIG_FILE": state["config_file"]},
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return json.loads(out)["access_token"]


def m2m_token(state, service_principal):
    """A service principal's token, as the caller's external mode gets it: OAuth client credentials (M2M)."""
    sp = state["service_principals"][service_principal]
    resp = requests.post(state["workspace_host"] + "/oidc/v1/token", timeout=60,
                         auth=(sp["client_id"], sp["client_secret"]),
                         data={"grant_type": "client_credentials", "scope": "all-apis"})
    resp.raise_for_status()
    return resp.json()["access_token"]


def get(url, token=None, **headers):
    if token:
        headers["Authorization"] = "Bearer " + token
    return requests.get(url, headers=headers, timeout=60, allow_redirects=False)


def forwarded_user(state, principal_id):
    return f"{principal_id}@{state['workspace_id']}"


def test_a_user_through_the_cli_profile(emulator):
    resp = get(emulator["apps"]["api-app"]["url"] + "/api/whoami", user_token(emulator))
    assert resp.status_code == 200
    who = resp.json()
    assert who["user"] == forwarded_user(emulator, emulator["users"]["dev@example.com"]["id"])
    assert who["kind"] == "user"
    assert who["email"] == who["preferred_username"] == "dev@example.com"
    assert who["access_token_forwarded"], "api-app has user authorization scopes: the proxy forwards a token"
    assert who["host"] == emulator["apps"]["api-app"]["url"].removeprefix("http://")
    assert who["request_id"]


def test_a_service_principal_m2m(emulator):
    sp = emulator["service_principals"]["external-service"]
    who = get(emulator["apps"]["api-app"]["url"] + "/api/whoami", m2m_token(emulator, "external-service")).json()
    assert who["user"] == forwarded_user(emulator, sp["id"])
    assert who["kind"] == "service_principal"
    assert who["email"] is None
    assert who["preferred_username"] == sp["client_id"], "a service principal's application id"
    assert not who["access_token_forwarded"], "only users' tokens are forwarded"


def test_another_app_as_its_own_service_principal(emulator):
    """caller-app's /api/call calls api-app as caller-app, whoever called caller-app (here the user)."""
    resp = get(emulator["apps"]["caller-app"]["url"] + "/api/call?path=/api/whoami", user_token(emulator))
    assert resp.status_code == 200, resp.text
    who = resp.json()["response"]
    assert who["user"] == forwarded_user(emulator, emulator["service_principals"]["caller-app"]["id"])
    assert who["kind"] == "service_principal"


@pytest.mark.parametrize("who, status", [
    ("no token", 401),
    ("a service principal without CAN USE", 403),
])
def test_the_proxy_refuses_before_the_app(emulator, who, status):
    token = m2m_token(emulator, "no-access-service") if status == 403 else None
    assert get(emulator["apps"]["api-app"]["url"] + "/api/whoami", token).status_code == status


def test_the_proxy_replaces_forwarded_headers_a_client_sends(emulator):
    sp = emulator["service_principals"]["external-service"]
    who = get(emulator["apps"]["api-app"]["url"] + "/api/whoami", m2m_token(emulator, "external-service"),
              **{"X-Forwarded-User": "1001@1234567890123456", "X-Forwarded-Email": "dev@example.com"}).json()
    assert who["user"] == forwarded_user(emulator, sp["id"])
    assert who["email"] is None


def test_it_listens_on_loopback_only(emulator):
    """main.py listens on APP_LISTEN_ADDR, which the emulator sets to 127.0.0.1: no one reaches it past the proxy.
    The emulator checks the app's listeners before it writes the state file, and warns about any other."""
    assert "reachable past the proxy" not in emulator["log"].read_text()


def doc_block(marker):
    """The output lines of the first text block after marker in docs/testing-your-app.md: not its commands ("$ …"),
    nor their continuation lines (indented)."""
    doc = (ROOT / "docs" / "testing-your-app.md").read_text()
    block = re.search(r"```text\n(.*?)```", doc[doc.index(marker):], re.S).group(1)
    return [line for line in block.splitlines() if not line.startswith(("$ ", " "))]


def test_the_caller_prints_what_the_docs_show(emulator):
    """callapp whoami reads this app's answer as it reads the Go app's, word for word as the docs show it."""
    env = {**emulator["env"], "DATABRICKS_CONFIG_FILE": emulator["config_file"]}
    url = emulator["apps"]["api-app"]["url"]
    user = subprocess.run([emulator["caller_bin"], "--mode", "local", "--profile", "emulator", "--url", url, "whoami"],
                          env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    sp = emulator["service_principals"]["external-service"]
    m2m = subprocess.run([emulator["caller_bin"], "--mode", "external", "--client-secret-stdin", "--app", "api-app",
                          "whoami"], input=sp["client_secret"], capture_output=True, text=True, timeout=60, check=True,
                         env={**emulator["env"], "DATABRICKS_HOST": emulator["workspace_host"],
                              "DATABRICKS_CLIENT_ID": sp["client_id"]}).stdout
    ports = re.compile(r"127\.0\.0\.[0-9]+:[0-9]+")  # each app has a loopback address and a port of its own
    got = [ports.sub("127.0.0.N:PORT", line) for line in (user + m2m).splitlines()]
    want = [ports.sub("127.0.0.N:PORT", line) for line in doc_block("<!-- the examples' tests compare this block -->")]
    assert got == want
