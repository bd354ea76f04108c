// A node:http app for Databricks Apps that tells who called it, from the headers the Apps proxy adds. No
// dependencies. The proxy authenticates every request and adds X-Forwarded-User and friends; the app trusts them
// because only the proxy can reach it. Behind the emulator's proxy, from the repository's root:
//
//   go run ./emulator run -- node examples/node/server.js
//
// and its test, which starts the emulator itself: node --test examples/node/server.test.js
import http from 'node:http';

// The platform sets DATABRICKS_APP_PORT and expects the app on every interface; alone, the app stays on loopback.
const port = process.env.DATABRICKS_APP_PORT;
const host = port ? '0.0.0.0' : '127.0.0.1';

// The same answer as the Go app's GET /api/whoami, so `callapp whoami` reads it too. Node lowercases header names.
function whoami(headers) {
  return {
    user: headers['x-forwarded-user'], // "<id>@<workspace id>"
    kind: headers['x-forwarded-email'] ? 'user' : 'service_principal', // only users have an email
    email: headers['x-forwarded-email'] ?? null,
    preferred_username: headers['x-forwarded-preferred-username'] ?? null,
    host: headers['x-forwarded-host'] ?? null,
    request_id: headers['x-request-id'] ?? null,
    // The user's token, with user authorization only. Use it to call Databricks as the user; never echo it.
    access_token_forwarded: Boolean(headers['x-forwarded-access-token']),
  };
}

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://app').pathname;
  if (req.method === 'GET' && path === '/api/health') return send(res, 200, { status: 'ok' });
  if (req.method === 'GET' && path === '/api/whoami') {
    if (!req.headers['x-forwarded-user']) {
      // Only a request that bypassed the proxy lacks it.
      return send(res, 401, { error_code: 'UNAUTHENTICATED', message: 'no X-Forwarded-User: call the app through its URL' });
    }
    return send(res, 200, whoami(req.headers));
  }
  send(res, 404, { error_code: 'ENDPOINT_NOT_FOUND', message: `no route ${path}` });
});

server.listen(Number(port ?? 8000), host, () => console.log(`listening on ${host}:${server.address().port}`));

// The platform sends SIGTERM before it stops the app: finish the requests in flight, then exit.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections(); // Node 18 keeps idle keep-alive connections open otherwise
});
