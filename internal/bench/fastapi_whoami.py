"""The FastAPI peer of the Go app's GET /api/whoami, for make bench: the same answer, built from the same headers."""

from fastapi import FastAPI, Request

app = FastAPI()

OPTIONAL = {
    "email": "x-forwarded-email",
    "preferred_username": "x-forwarded-preferred-username",
    "host": "x-forwarded-host",
    "real_ip": "x-real-ip",
    "request_id": "x-request-id",
}


@app.get("/api/health")
async def health():
    return {"status": "ok"}


@app.get("/api/whoami")
async def whoami(request: Request):
    headers = request.headers
    user = headers.get("x-forwarded-user", "")
    principal_id, _, workspace_id = user.partition("@")
    body = {
        "user": user,
        "user_format": "id@workspace",
        "principal_id": principal_id,
        "workspace_id": workspace_id,
        "kind": "user" if headers.get("x-forwarded-email") else "service_principal",
    }
    for key, header in OPTIONAL.items():
        if value := headers.get(header):
            body[key] = value
    body["access_token_forwarded"] = "x-forwarded-access-token" in headers
    if not body["access_token_forwarded"]:
        body["access_token_note"] = "no user access token: the proxy forwards one for users only"
    return body
