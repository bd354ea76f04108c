// server.js under the Databricks Apps emulator: who the app sees for each way an app is called.
//
// The emulator starts the app as the platform does, behind its Apps proxy, and writes URLs and credentials to its
// state file; the test reads them from there, calls the app through the proxy, and checks the X-Forwarded-* identity
// the app saw. From the repository's root, with Node 18 or later:
//
//   node --test examples/node/server.test.js
//
// It builds the emulator and the caller with Go, unless EMULATOR and CALLER name binaries (`make test` builds them once).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'node-app-test-'));
// Your own Databricks credentials stay out of it.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DATABRICKS_')));
let emulator;
let state;
let callerBin;
let log;
const running = () => emulator.exitCode === null && emulator.signalCode === null;

function goBinary(variable, pkg) {
  if (process.env[variable]) return resolve(process.env[variable]);
  const out = join(tmp, pkg.split('/').pop());
  execFileSync('go', ['build', '-o', out, pkg], { cwd: root, stdio: 'inherit', timeout: 600_000 });
  return out;
}

// The emulator with this app as api-app and `callapp serve` as caller-app, which calls its target-app resource,
// api-app, as its own service principal.
before(async () => {
  const emulatorBin = goBinary('EMULATOR', './emulator');
  callerBin = goBinary('CALLER', './caller');
  const callerYAML = join(tmp, 'caller-app.yaml');
  writeFileSync(callerYAML, JSON.stringify({ command: [callerBin, 'serve'], env: [{ name: 'TARGET_APP', valueFrom: 'target-app' }] }));
  const stateFile = join(tmp, 'state.json');
  log = join(tmp, 'emulator.log');
  const out = openSync(log, 'w');
  emulator = spawn(emulatorBin, ['run', '--fresh', '--state', stateFile,
    '--app', 'caller-app', '--app-yaml', callerYAML,
    '--app', 'api-app', '--', process.execPath, join(here, 'server.js')],
  { env, stdio: ['ignore', out, out], detached: true });
  const deadline = Date.now() + 120_000;
  while (!existsSync(stateFile)) {
    if (!running() || Date.now() > deadline) {
      throw new Error(`the emulator did not start:\n${readFileSync(log, 'utf8').slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  state = JSON.parse(readFileSync(stateFile, 'utf8'));
});

// SIGTERM: the emulator stops the apps, as the platform does, then itself; SIGKILL for the group if it hangs.
after(async () => {
  if (emulator && running()) {
    const exited = new Promise((r) => emulator.once('exit', r));
    emulator.kill('SIGTERM');
    const timer = setTimeout(() => process.kill(-emulator.pid, 'SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(tmp, { recursive: true, force: true });
});

// Should the test end before after() (Ctrl+C, the runner stopping it), the emulator must not outlive it.
const stopEmulator = () => emulator && running() && emulator.kill('SIGTERM');
process.on('exit', stopEmulator);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(signal, () => process.exit(1));

// The signed-in user's token, as the caller's local mode gets it: the CLI profile's `databricks auth token`.
async function userToken() {
  const { stdout } = await promisify(execFile)(state.cli_path, ['auth', 'token', '--profile', state.profile],
    { env: { ...env, DATABRICKS_CONFIG_FILE: state.config_file }, timeout: 30_000 });
  return JSON.parse(stdout).access_token;
}

// A service principal's token, as the caller's external mode gets it: OAuth client credentials (M2M).
async function m2mToken(name) {
  const sp = state.service_principals[name];
  const resp = await fetch(`${state.workspace_host}/oidc/v1/token`, {
    method: 'POST',
    headers: { Authorization: 'Basic ' + Buffer.from(`${sp.client_id}:${sp.client_secret}`).toString('base64') },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'all-apis' }),
  });
  assert.equal(resp.status, 200);
  return (await resp.json()).access_token;
}

function get(url, token, headers = {}) {
  if (token) headers.Authorization = `Bearer ${token}`;
  return fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(60_000) });
}

const apiApp = () => state.apps['api-app'].url;
const forwardedUser = (principalId) => `${principalId}@${state.workspace_id}`;

test('a user through the CLI profile', async () => {
  const resp = await get(`${apiApp()}/api/whoami`, await userToken());
  assert.equal(resp.status, 200);
  const who = await resp.json();
  assert.equal(who.user, forwardedUser(state.users['dev@example.com'].id));
  assert.equal(who.kind, 'user');
  assert.equal(who.email, 'dev@example.com');
  assert.equal(who.preferred_username, 'dev@example.com');
  assert.ok(who.access_token_forwarded, 'api-app has user authorization scopes: the proxy forwards a token');
  assert.equal(who.host, new URL(apiApp()).host);
  assert.ok(who.request_id);
});

test('a service principal, M2M', async () => {
  const sp = state.service_principals['external-service'];
  const who = await (await get(`${apiApp()}/api/whoami`, await m2mToken('external-service'))).json();
  assert.equal(who.user, forwardedUser(sp.id));
  assert.equal(who.kind, 'service_principal');
  assert.equal(who.email, null);
  assert.equal(who.preferred_username, sp.client_id, "a service principal's application id");
  assert.equal(who.access_token_forwarded, false, "only users' tokens are forwarded");
});

test('another app, as its own service principal', async () => {
  // caller-app's /api/call calls api-app as caller-app, whoever called caller-app (here the user).
  const resp = await get(`${state.apps['caller-app'].url}/api/call?path=/api/whoami`, await userToken());
  assert.equal(resp.status, 200);
  const who = (await resp.json()).response;
  assert.equal(who.user, forwardedUser(state.service_principals['caller-app'].id));
  assert.equal(who.kind, 'service_principal');
});

test('the proxy refuses before the app', async (t) => {
  await t.test('no token: 401', async () => {
    assert.equal((await get(`${apiApp()}/api/whoami`)).status, 401);
  });
  await t.test('a service principal without CAN USE: 403', async () => {
    assert.equal((await get(`${apiApp()}/api/whoami`, await m2mToken('no-access-service'))).status, 403);
  });
});

test('the proxy replaces forwarded headers a client sends', async () => {
  const sp = state.service_principals['external-service'];
  const resp = await get(`${apiApp()}/api/whoami`, await m2mToken('external-service'),
    { 'X-Forwarded-User': '1001@1234567890123456', 'X-Forwarded-Email': 'dev@example.com' });
  const who = await resp.json();
  assert.equal(who.user, forwardedUser(sp.id));
  assert.equal(who.email, null);
});

test('it listens on loopback only', () => {
  // server.js listens on APP_LISTEN_ADDR, which the emulator sets to 127.0.0.1: no one reaches it past the proxy.
  // The emulator checks the app's listeners before it writes the state file, and warns about any other.
  assert.ok(!readFileSync(log, 'utf8').includes('reachable past the proxy'));
});

// The output lines of the first text block after marker in docs/testing-your-app.md: not its commands ("$ …"), nor
// their continuation lines (indented).
function docBlock(marker) {
  const doc = readFileSync(join(root, 'docs', 'testing-your-app.md'), 'utf8');
  const block = doc.slice(doc.indexOf(marker)).match(/```text\n([\s\S]*?)```/)[1];
  return block.split('\n').filter((line) => line !== '' && !line.startsWith('$ ') && !line.startsWith(' '));
}

test('the caller prints what the docs show', async () => {
  // callapp whoami reads this app's answer as it reads the Go app's, word for word as the docs show it.
  const run = promisify(execFile);
  const user = await run(callerBin, ['--mode', 'local', '--profile', 'emulator', '--url', apiApp(), 'whoami'],
    { env: { ...env, DATABRICKS_CONFIG_FILE: state.config_file }, timeout: 60_000 });
  const sp = state.service_principals['external-service'];
  const m2m = execFileSync(callerBin, ['--mode', 'external', '--client-secret-stdin', '--app', 'api-app', 'whoami'],
    { input: sp.client_secret, env: { ...env, DATABRICKS_HOST: state.workspace_host, DATABRICKS_CLIENT_ID: sp.client_id },
      timeout: 60_000, encoding: 'utf8' });
  // Each app has a loopback address and a port of its own.
  const ports = (line) => line.replace(/127\.0\.0\.[0-9]+:[0-9]+/g, '127.0.0.N:PORT');
  const got = (user.stdout + m2m).split('\n').filter((line) => line !== '').map(ports);
  assert.deepEqual(got, docBlock("<!-- the examples' tests compare this block -->").map(ports));
});
