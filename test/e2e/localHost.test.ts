import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_INCIDENT_PATH } from '../fixtures/incidents';
import { freePort } from '../support/net';
import { REPOSITORY_ROOT } from '../../cli/repositoryRoot';
import { buildOnce } from '../support/build';
import { EventHubsEmulator } from '../../sandbox/eventHubs';

const HOST = path.join(REPOSITORY_ROOT, 'dist/cli/host.js');

/** Start the compiled local host as `npm start` does, in its own working directory; resolve with its banner and what it writes to stderr. */
function startHost(cwd: string, env: Record<string, string>): Promise<{ child: ChildProcess; banner: string; stderr: () => string }> {
  const child = spawn(process.execPath, [HOST], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Try it')) setTimeout(() => resolve({ child, banner: out, stderr: () => err }), 50);
    });
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => reject(new Error(`host exited with ${code}: ${out}${err}`)));
  });
}

const ADELE = '6e7b768e-07e2-4810-8459-485f84f8f204';

/**
 * A request with any Host header (fetch will not set one), and a body sent in chunks without a length. A server that
 * refuses a body mid-way may reset the connection before the client reads its answer: that is reported as `reset`.
 */
function raw(
  port: number,
  options: { host: string; path: string; method?: string; headers?: Record<string, string>; body?: Buffer },
): Promise<{ status?: number; reset?: true }> {
  return new Promise((resolve) => {
    const req = request(
      { port, host: '127.0.0.1', method: options.method ?? 'GET', path: options.path, headers: { host: options.host, ...options.headers } },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      },
    );
    req.on('error', () => resolve({ reset: true }));
    if (options.body) for (let i = 0; i < options.body.length; i += 65536) req.write(options.body.subarray(i, i + 65536));
    req.end();
  });
}

interface SandboxState {
  calls: Array<{ method: string; path: string }>;
  users: Array<{ id: string; accountEnabled: boolean; sessionRevocations: number }>;
  machines: Array<{ computerDnsName: string; isolated: boolean }>;
}

/** Send the sample as the banner says, then wait for the four actions to finish and their comments to be written. */
async function sendSampleAndWait(base: string, token: string): Promise<{ summary: string; state: SandboxState }> {
  const res = await fetch(`${base}/api/incidents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: readFileSync(SAMPLE_INCIDENT_PATH, 'utf8'),
  });
  expect(res.status).toBe(202);
  const { decision } = (await res.json()) as { decision: { summary: string } };
  let entries: Array<{ state: string }> = [];
  let state: SandboxState = { calls: [], users: [], machines: [] };
  const comments = () => state.calls.filter((c) => c.method === 'PUT' && /\/comments\//i.test(c.path)).length;
  for (let i = 0; i < 250 && !(entries.length === 4 && entries.every((e) => e.state === 'succeeded') && comments() >= 4); i++) {
    await new Promise((r) => setTimeout(r, 20));
    const auth = { headers: { authorization: `Bearer ${token}` } };
    entries = ((await (await fetch(`${base}/local/ledger`, auth)).json()) as { entries: typeof entries }).entries;
    state = (await (await fetch(`${base}/local/sandbox`, auth)).json()) as SandboxState;
  }
  expect(entries.map((e) => e.state)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
  expect(comments()).toBeGreaterThanOrEqual(4);
  return { summary: decision.summary, state };
}

describe('the local host (npm start)', () => {
  let host: ChildProcess | undefined;
  let banner = '';
  let base = '';
  let token = '';

  beforeAll(async () => {
    await buildOnce();
    const cwd = mkdtempSync(path.join(tmpdir(), 'responder-host-'));
    const port = await freePort();
    ({ child: host, banner } = await startHost(cwd, { PORT: String(port), LOG_LEVEL: 'warn' }));
    base = `http://localhost:${port}`;
    token = readFileSync(path.join(cwd, '.responder/local-token'), 'utf8');
  }, 120_000);
  afterAll(() => void host?.kill('SIGTERM'));

  it('prints a banner with the routes and a ready-to-run example', () => {
    // Each route on its line with its role, the roles aligned in one column.
    const routes = banner.split('\n').filter((line) => line.includes(`${base}/api/`) && !line.includes('curl') && !line.includes('responder --'));
    expect(routes.some((line) => /^ {2}POST {2}\S+\/api\/incidents +role Incidents\.Submit$/.test(line))).toBe(true);
    expect(routes.some((line) => line.includes(`GET   ${base}/api/health `))).toBe(true);
    expect(new Set(routes.map((line) => line.search(/ (role|public)/))).size).toBe(1);
    expect(banner).toContain(
      `curl -s -X POST ${base}/api/incidents -H "Authorization: Bearer $(cat .responder/local-token)" -H "Content-Type: application/json" --data @cli/samples/incident.json`,
    );
    expect(banner).not.toContain('WARNING');
    expect(banner).toMatch(/tenant {3}sandbox at https:\/\/127\.0\.0\.1:\d+/);
    expect(banner).toContain(
      "auth     tokens from the sandbox's authority, validated as in Azure; .responder/local-token holds one with every app role (12 h)",
    );
  });

  it('contains when the printed example is sent: a sandbox user and device, and comments on the sandbox incident', async () => {
    expect(banner).toContain('policy   built-in default, every rule enforced against the sandbox');
    const { summary, state } = await sendSampleAndWait(base, token);
    expect(summary).toBe(
      'score 100 | rules compromised-identity, credential-theft, malware-on-endpoint | planned: disableUser adele.vance@contoso.com; revokeSessions adele.vance@contoso.com; confirmCompromised adele.vance@contoso.com; isolateDevice wks-042.contoso.com',
    );
    expect(state.users.find((u) => u.id === ADELE)).toMatchObject({ accountEnabled: false, sessionRevocations: 1 });
    expect(state.machines.find((m) => m.computerDnsName === 'wks-042.contoso.com')?.isolated).toBe(true);
  });

  it('rehearses with RESPONDER_MODE=audit: reads, comments, changes no user or device', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'responder-host-'));
    const port = await freePort();
    const { child } = await startHost(cwd, { PORT: String(port), LOG_LEVEL: 'warn', RESPONDER_MODE: 'audit' });
    try {
      const { summary, state } = await sendSampleAndWait(`http://localhost:${port}`, readFileSync(path.join(cwd, '.responder/local-token'), 'utf8'));
      expect(summary).toMatch(/planned: disableUser adele.vance@contoso.com \(audit\);/);
      const writes = state.calls.filter((c) => c.method !== 'GET');
      for (const write of writes) expect(`${write.method} ${write.path}`).toMatch(/^PUT \/subscriptions\/.*\/incidents\/73e01a99-5cd7-4139-a149-9f2736ff2ab5/i);
      expect(state.users.find((u) => u.id === ADELE)).toMatchObject({ accountEnabled: true, sessionRevocations: 0 });
      expect(state.machines.every((m) => !m.isolated)).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('serves the same routes and errors as Azure', async () => {
    expect(await (await fetch(`${base}/api/health`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${base}/api/incidents`, { method: 'POST', body: '{}' })).status).toBe(401);
    const empty = await fetch(`${base}/api/incidents`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    expect(empty.status).toBe(400);
    expect((await fetch(`${base}/api/nowhere`)).status).toBe(404);
  });

  it('answers only to localhost, shows /local/* only with a token, and never reads an oversized body', async () => {
    const port = Number(new URL(base).port);
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    expect((await raw(port, { host: `evil.example:${port}`, path: '/api/health' })).status).toBe(421);
    expect((await raw(port, { host: `localhost:${port}`, path: '/api/health' })).status).toBe(200);
    expect((await raw(port, { host: `localhost:${port}`, path: '//' })).status).toBe(400);
    expect((await fetch(`${base}/local/ledger`)).status).toBe(401);
    expect((await fetch(`${base}/local/sandbox`, { headers: { authorization: 'Bearer not.a.token' } })).status).toBe(401);
    // 200 MB declared, and 2 MB sent without a length: refused, unauthenticated, without being read whole.
    expect(
      (await raw(port, { host: `localhost:${port}`, path: '/api/incidents', method: 'POST', headers: { 'content-length': String(200 * 2 ** 20) } })).status,
    ).toBe(413);
    const chunked = await raw(port, { host: `localhost:${port}`, path: '/api/incidents', method: 'POST', body: Buffer.alloc(2 * 2 ** 20, 0x20) });
    expect(chunked.status === 413 || chunked.reset).toBe(true);
    expect((await fetch(`${base}/api/health`)).status).toBe(200);
  });

  it("takes ID Protection's risk logs from their Event Hub when EventHubConnection is set, and contains", async () => {
    const emulator = await new EventHubsEmulator().start();
    emulator.createHub('risk-logs', { partitionCount: 2 });
    const cwd = mkdtempSync(path.join(tmpdir(), 'responder-host-'));
    const port = await freePort();
    const env = { PORT: String(port), LOG_LEVEL: 'warn', EventHubConnection: emulator.connectionString, RESPONDER_RISK_EVENT_HUB: 'risk-logs' };
    const { child, banner: hostBanner } = await startHost(cwd, env);
    try {
      expect(hostBanner).toMatch(/riskEventHub +Event Hub \(EventHubConnection\), hub risk-logs, group \$Default/);
      const body = JSON.parse(readFileSync(path.join(__dirname, '../fixtures/risk/RiskyUsers.json'), 'utf8')) as unknown;
      emulator.append('risk-logs', [body]);
      const auth = { headers: { authorization: `Bearer ${readFileSync(path.join(cwd, '.responder/local-token'), 'utf8')}` } };
      let adele: SandboxState['users'][number] | undefined;
      for (let i = 0; i < 300 && adele?.accountEnabled !== false; i++) {
        await new Promise((r) => setTimeout(r, 50));
        adele = ((await (await fetch(`http://localhost:${port}/local/sandbox`, auth)).json()) as SandboxState).users.find((u) => u.id === ADELE);
      }
      // The default policy's compromised-identity rule takes risk signals: Adele, at high risk, is contained.
      expect(adele).toMatchObject({ accountEnabled: false });
    } finally {
      child.kill('SIGTERM');
      await emulator.stop();
    }
  });

  it('says on its terminal what its Event Hub trigger logs: an event passed over is named there, not a blank line', async () => {
    const emulator = await new EventHubsEmulator().start();
    emulator.createHub('risk-logs', { partitionCount: 1 });
    const cwd = mkdtempSync(path.join(tmpdir(), 'responder-host-'));
    const port = await freePort();
    const env = { PORT: String(port), LOG_LEVEL: 'warn', EventHubConnection: emulator.connectionString, RESPONDER_RISK_EVENT_HUB: 'risk-logs' };
    const { child, stderr } = await startHost(cwd, env);
    try {
      emulator.append('risk-logs', ['not a body of records']);
      for (let i = 0; i < 200 && !stderr().includes('passed over'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(stderr()).toContain('risk event not read, passed over');
    } finally {
      child.kill('SIGTERM');
      await emulator.stop();
    }
  });

  it("never prints a connection string's key when it cannot start: a hub setting its EntityPath does not name", async () => {
    const key = 'c2VjcmV0LWtleS1vZi10aGUtaHVi';
    const env = {
      PORT: String(await freePort()),
      EventHubConnection: `Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=listen;SharedAccessKey=${key};EntityPath=risk-logs`,
      RESPONDER_RISK_EVENT_HUB: 'other-hub',
    };
    const failed = await startHost(mkdtempSync(path.join(tmpdir(), 'responder-host-')), env).then(
      ({ child }) => (child.kill('SIGTERM'), 'started'),
      (error: Error) => error.message,
    );
    expect(failed).toMatch(/local host failed to start: .*other-hub/);
    expect(failed).not.toContain(key);
  });

  it('refuses to run in Azure', async () => {
    await expect(startHost(tmpdir(), { WEBSITE_INSTANCE_ID: 'abc', PORT: '0' })).rejects.toThrow(/does not run in Azure/);
  });
});
