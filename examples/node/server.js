// A node:http app for Databricks Apps that tells who called it, from the headers the Apps proxy adds. No
// dependencies. The proxy authenticates every request and adds X-Forwarded-User and friends; the app trusts them
// because only the proxy can reach it. Behind the emulator's proxy, from the repository's root:
//
//   emulator run -- node examples/node/server.js
//
// and its test, which starts the emulator itself: node --test examples/node/server.test.js
import http from 'node:http';

// Where to listen, in the Go app's order: APP_LISTEN_ADDR (the emulator sets 127.0.0.1:<port>, so only its proxy
// reaches the app), else every interface on DATABRICKS_APP_PORT (the platform, whose proxy reaches the app from
// outside), else loopback:8000.
function listenAddress(env) {
  if (env.APP_LISTEN_ADDR) {
    const at = env.APP_LISTEN_ADDR.lastIndexOf(':');
    return { host: env.APP_LISTEN_ADDR.slice(0, at).replace(/^\[|\]$/g, '') || '0.0.0.0', port: Number(env.APP_LISTEN_ADDR.slice(at + 1)) };
  }
  if (env.DATABRICKS_APP_PORT) return { host: '0.0.0.0', port: Number(env.DATABRICKS_APP_PORT) };
  return { host: '127.0.0.1', port: 8000 };
}

// The same answer as the Go app's GET /api/whoami, so `callapp whoami` reads it too. Node lowercases header names.
function whoami(headers) {
  const user = headers['x-forwarded-user'];
  return {
    user, // "<id>@<workspace id>"
    // "email" only under `databricks apps run-local`, which sends the user's email instead.
    user_format: /^[0-9]+@[0-9]+$/.test(user) ? 'id@workspace' : 'email',
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

const { host, port } = listenAddress(process.env);
server.listen(port, host, () => console.log(`listening on ${host}:${server.address().port}`));

// The platform sends SIGTERM before it stops the app: finish the requests in flight, then exit.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections(); // Node 18 keeps idle keep-alive connections open otherwise
});
