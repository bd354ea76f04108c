"""A FastAPI app for Databricks Apps that tells who called it, from the headers the Apps proxy adds.

The proxy authenticates every request and adds X-Forwarded-User and friends; the app trusts them because only the
proxy can reach it. Run it behind the emulator's proxy, from the repository's root:

    go run ./emulator run -- python3 -m uvicorn --app-dir examples/fastapi main:app --port '$DATABRICKS_APP_PORT'

(the single quotes leave $DATABRICKS_APP_PORT to the emulator) and its test, which starts the emulator itself:
python3 -m pytest examples/fastapi. Deploy the folder as it is: app.yaml holds the platform's command.
"""

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
        "kind": "user" if x_forwarded_email else "service_principal",   # only users have an email
        "email": x_forwarded_email,
        "preferred_username": x_forwarded_preferred_username,
        "host": x_forwarded_host,
        "request_id": x_request_id,
        # The user's token, with user authorization only. Use it to call Databricks as the user; never echo it.
        "access_token_forwarded": bool(x_forwarded_access_token),
    }
