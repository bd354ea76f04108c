"""A FastAPI app for Databricks Apps that tells who called it, from the headers the Apps proxy adds.

The proxy authenticates every request and adds X-Forwarded-User and friends; the app trusts them because only the
proxy can reach it, so it listens where the Go app does (listen_address). Run it behind the emulator's proxy, from
the repository's root, with an interpreter that has FastAPI and uvicorn:

    emulator run -- python3 examples/fastapi/main.py

and its test, which starts the emulator itself: python3 -m pytest examples/fastapi. Deploy the folder as it is:
app.yaml holds the platform's command.
"""

import os
import re

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

app = FastAPI(title="Who am I, for Databricks Apps")


@app.get("/api/health")
def health():
    return {"status": "ok"}


# The same answer as the Go app's GET /api/whoami, so `callapp whoami` reads it too. Header() maps
# x_forwarded_user to X-Forwarded-User.
@app.get("/api/whoami")
def whoami(
    x_forwarded_user: str | None = Header(default=None),
    x_forwarded_email: str | None = Header(default=None),
    x_forwarded_preferred_username: str | None = Header(default=None),
    x_forwarded_host: str | None = Header(default=None),
    x_forwarded_access_token: str | None = Header(default=None),
    x_request_id: str | None = Header(default=None),
):
    if not x_forwarded_user:
        # Only a request that bypassed the proxy lacks it.
        return JSONResponse(status_code=401, content={
            "error_code": "UNAUTHENTICATED", "message": "no X-Forwarded-User: call the app through its URL"})
    return {
        "user": x_forwarded_user,                 # "<id>@<workspace id>"
        # "email" only under `databricks apps run-local`, which sends the user's email instead.
        "user_format": "id@workspace" if re.fullmatch(r"[0-9]+@[0-9]+", x_forwarded_user) else "email",
        "kind": "user" if x_forwarded_email else "service_principal",   # only users have an email
        "email": x_forwarded_email,
        "preferred_username": x_forwarded_preferred_username,
        "host": x_forwarded_host,
        "request_id": x_request_id,
        # The user's token, with user authorization only. Use it to call Databricks as the user; never echo it.
        "access_token_forwarded": bool(x_forwarded_access_token),
    }


def listen_address():
    """Where to listen, in the Go app's order: APP_LISTEN_ADDR (the emulator sets 127.0.0.1:<port>), else every
    interface on DATABRICKS_APP_PORT (the platform, whose proxy reaches the app from outside), else loopback:8000."""
    if os.environ.get("APP_LISTEN_ADDR"):
        host, _, port = os.environ["APP_LISTEN_ADDR"].rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)
    if os.environ.get("DATABRICKS_APP_PORT"):
        return "0.0.0.0", int(os.environ["DATABRICKS_APP_PORT"])
    return "127.0.0.1", 8000


if __name__ == "__main__":
    import uvicorn

    host, port = listen_address()
    uvicorn.run(app, host=host, port=port)
