#!/usr/bin/env node
/**
 * The local host: what `npm start` runs. Azure Functions Core Tools cannot be installed everywhere, so this serves
 * every registered HTTP function at the same routes as Azure (http://localhost:7071/api/...), drives the
 * queue-triggered worker from Service Bus (when ServiceBusConnection is set) or from an embedded queue with Service
 * Bus's delivery semantics, and runs timer functions on their schedules. Users with Core Tools can run
 * `func start` against the same build instead.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { authenticate } from '../shared/auth/authenticate';
import { AuthError, authorize, ROLES, runningInAzure } from '../shared/auth/caller';
import { matchRoute, registry, type HttpMethod } from '../shared/azure/registry';
import { config, type ResponderConfig } from '../shared/config';
import { MemoryLedger } from '../shared/ledger/memoryLedger';
import { scrubSecrets } from '../shared/log';
import { EmbeddedQueue } from '../shared/queue/embeddedQueue';
import type { ServiceBusActionQueue } from '../shared/queue/serviceBusQueue';
import type { ActionLedger } from '../shared/ledger/ledger';
import type { CompiledPolicy } from '../shared/policy/decide';
import { DEFAULT_POLICY_PATH } from '../shared/policy/load';
import { configureRuntime, runtime } from '../shared/runtime';
import { Sandbox } from '../sandbox/server';
import { TimerDriver } from './timerDriver';
import { consumeHub, hubConnectionOf } from './eventHubConsumer';
import { SharedStateCheckpointStore } from './hubCheckpoints';
import { loadLocalSettings } from './localSettings';
import { REPOSITORY_ROOT } from './repositoryRoot';
import { LOCAL_STATE_DIR, LOCAL_TOKEN_FILE, LOOPBACK_NAMES } from './localToken';

/** The object id the local developer's token carries: what the ledger records as the requester. */
const LOCAL_DEVELOPER_OID = '00000de0-0000-4000-8000-000000000001';

type DrivenQueue = EmbeddedQueue | ServiceBusActionQueue;

async function main(): Promise<void> {
  if (runningInAzure()) throw new Error('the local host does not run in Azure: the Functions host serves the app there');
  loadLocalSettings();
  const tenant = chosenTenant();
  if (tenant === 'sandbox' && !process.env.RESPONDER_SANDBOX_CA_TRUSTED) return relaunchTrustingSandbox();
  const sandbox = tenant === 'sandbox' ? await startSandbox() : undefined;
  const demoPolicy = sandbox !== undefined && enforceDemoPolicy();
  const settings = readSettings();
  const trigger = serviceBusTrigger();
  const { policy, queue, ledger } = await composeEngine(settings, trigger.concurrency, sandbox !== undefined);
  startQueueConsumer(queue, trigger);
  const hubs = await startHubConsumers(settings);
  const timers = startTimers();
  if (sandbox) await writeLocalToken(sandbox);
  const { server, port } = await startHttpServer(ledger, sandbox);
  console.log(banner({ port, settings, policy, sandbox, demoPolicy, hubs: hubs.map((h) => h.view) }));
  stopOnSignal({ timers, queue, sandbox, server, hubs });
}

function chosenTenant(): 'sandbox' | 'azure' {
  const tenant = (process.env.RESPONDER_TENANT || 'sandbox').toLowerCase();
  if (tenant !== 'sandbox' && tenant !== 'azure') throw new Error(`RESPONDER_TENANT must be sandbox or azure, got ${JSON.stringify(tenant)}`);
  return tenant;
}

/** The sandbox's endpoints and managed identity replace the cloud's before the settings are first read. */
async function startSandbox(): Promise<Sandbox> {
  const sandbox = await Sandbox.start();
  Object.assign(process.env, sandbox.settings());
  return sandbox;
}

/**
 * Against the sandbox nothing real can be hurt: unless a policy is given, the demo enforces the default policy (every
 * rule), so the example visibly contains. RESPONDER_MODE=audit rehearses instead. Answers whether it applies.
 */
function enforceDemoPolicy(): boolean {
  if (process.env.RESPONDER_POLICY || process.env.RESPONDER_POLICY_PATH) return false;
  process.env.RESPONDER_POLICY = enforcedDefaultPolicy();
  return true;
}

function readSettings(): ResponderConfig {
  const settings = config();
  if (settings.problems.length) throw new Error(`settings are invalid:\n  - ${settings.problems.join('\n  - ')}`);
  return settings;
}

/**
 * Service Bus and Table storage when their app settings are present (compose opens them), else in-memory twins; then
 * the entry points. The runtime is opened now, so an invalid policy or an unreachable broker or storage fails start-up
 * rather than the first request.
 */
async function composeEngine(
  settings: ResponderConfig,
  concurrency: number,
  againstSandbox: boolean,
): Promise<{ policy: CompiledPolicy; queue: DrivenQueue; ledger: ActionLedger }> {
  configureRuntime({
    ...(!settings.storage && { ledger: new MemoryLedger() }),
    // The sandbox completes machine actions at once: follow-ups and retries need not wait their real delays there.
    ...(!settings.serviceBus && { queue: new EmbeddedQueue({ concurrency, ...(againstSandbox && { maxScheduleDelayMs: 2000 }) }) }),
  });
  loadFunctions();
  const { policy, queue, ledger } = await runtime();
  return { policy, queue: queue as DrivenQueue, ledger };
}

/** Deliver the actions queue to its queue-triggered function as the Functions host would, with host.json's trigger settings. */
function startQueueConsumer(queue: DrivenQueue, trigger: ServiceBusTrigger): void {
  for (const fn of registry.queues) {
    if (fn.queueName !== 'actions') continue;
    queue.start(
      (body, delivery) =>
        fn.handler(
          body,
          new InvocationContext({
            invocationId: `${fn.name}-${delivery.messageId}-${delivery.deliveryCount}`,
            functionName: fn.name,
            triggerMetadata: { ...delivery },
            logHandler: hostLog,
          }),
        ),
      trigger,
    );
  }
}

/**
 * Consume each Event Hub a trigger names, when its connection is set (EventHubConnection, or its identity form), as the
 * Functions host would; its place in each partition is kept in the engine's shared records.
 */
async function startHubConsumers(settings: ResponderConfig): Promise<Array<{ view: string; close(): Promise<void> }>> {
  const { shared } = await runtime();
  const running: Array<{ view: string; close(): Promise<void> }> = [];
  for (const registration of registry.eventHubs) {
    const hub = hubConnectionOf(registration, process.env);
    if (!hub) continue;
    const consumer = await consumeHub(registration, hub, new SharedStateCheckpointStore(shared), hostLine, { authorityHost: settings.authorityHost });
    const where = 'connectionString' in hub.connection ? `(${registration.connection})` : hub.connection.fullyQualifiedNamespace;
    running.push({
      view: `  ${registration.name.padEnd(20)} Event Hub ${where}, hub ${hub.eventHubName}, group ${registration.consumerGroup}`,
      close: () => consumer.close(),
    });
  }
  return running;
}

function startTimers(): TimerDriver {
  const timers = new TimerDriver(registry.timers, hostLine);
  timers.start();
  return timers;
}

/** A token the sandbox's authority minted, with every app role, for the developer: validated by the same code as in Azure. */
async function writeLocalToken(sandbox: Sandbox): Promise<void> {
  mkdirSync(LOCAL_STATE_DIR, { recursive: true });
  writeFileSync(
    LOCAL_TOKEN_FILE,
    await sandbox.authority.token(
      Object.values(ROLES),
      { oid: LOCAL_DEVELOPER_OID, name: 'local developer', idtyp: 'user', scp: 'access_as_user' },
      { expiresIn: '12h' },
    ),
  );
  chmodSync(LOCAL_TOKEN_FILE, 0o600);
}

async function startHttpServer(ledger: ActionLedger, sandbox: Sandbox | undefined): Promise<{ server: Server; port: number }> {
  const host = process.env.HOST || '127.0.0.1';
  const names = localHostNames(host);
  const server = createServer((req, res) => {
    serve(req, res, { ledger, sandbox, names }).catch((error: unknown) => {
      console.error(error);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(Number(process.env.PORT || 7071), host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** What the host serves and how to reach it, with a ready-to-run example. */
function banner(view: {
  port: number;
  settings: ResponderConfig;
  policy: CompiledPolicy;
  sandbox: Sandbox | undefined;
  demoPolicy: boolean;
  hubs: string[];
}): string {
  const { settings, policy, sandbox } = view;
  const base = `http://localhost:${view.port}`;
  const routeWidth = Math.max(...registry.http.map((r) => r.route.length));
  const bearer = sandbox ? `$(cat ${LOCAL_TOKEN_FILE})` : `$(az account get-access-token --scope ${settings.audiences[0]}/.default --query accessToken -o tsv)`;
  return [
    '',
    'Sentinel Responder — local host',
    view.demoPolicy
      ? `  policy   built-in default, every rule enforced against the sandbox (digest ${policy.digest})${settings.modeOverride === 'audit' ? ', but RESPONDER_MODE=audit: nothing is changed' : '; RESPONDER_MODE=audit to rehearse instead'}`
      : `  policy   ${policy.origin} (digest ${policy.digest}), mode ${policy.policy.mode}${settings.modeOverride === 'audit' ? ' (RESPONDER_MODE=audit)' : ''}`,
    sandbox
      ? `  tenant   sandbox at ${sandbox.origin}: Graph, Defender and a managed identity, seeded with demo users and devices (RESPONDER_TENANT=azure for real endpoints)`
      : `  tenant   azure: ${settings.endpoints.graph}, ${settings.endpoints.defender ?? 'no Defender'}, with DefaultAzureCredential`,
    `  queue    ${settings.serviceBus ? `Service Bus ${'connectionString' in settings.serviceBus ? '(ServiceBusConnection)' : settings.serviceBus.fullyQualifiedNamespace}, queue actions` : 'embedded, in memory: set ServiceBusConnection for Service Bus'}`,
    `  ledger   ${settings.storage ? 'Azure Table storage (AzureWebJobsStorage), table actionledger' : 'in memory: set AzureWebJobsStorage for Table storage'}`,
    sandbox
      ? `  auth     tokens from the sandbox's authority, validated as in Azure; ${LOCAL_TOKEN_FILE} holds one with every app role (12 h)`
      : `  auth     Entra tokens for ${settings.audiences[0]} from tenant ${settings.tenantId}, with the app roles the routes need`,
    '',
    'Routes',
    ...registry.http.map(
      (r) =>
        `  ${r.methods.join(',').padEnd(5)} ${base}/api/${r.route.padEnd(routeWidth)} ${'roles' in r.auth ? `role ${r.auth.roles.join(' or ')}` : r.auth.detailRoles.length ? 'public (details with a role)' : 'public'}`,
    ),
    `  GET   ${base}/${'local/ledger'.padEnd(routeWidth + 4)} this host only, role Responder.Read: every ledger entry and dead-letter record`,
    ...(sandbox
      ? [
          `  GET   ${base}/${'local/sandbox'.padEnd(routeWidth + 4)} this host only, role Responder.Read: the sandbox tenant's users, devices, machine actions and API calls`,
        ]
      : []),
    '',
    'Event Hubs',
    ...(view.hubs.length ? view.hubs : [`  none: set EventHubConnection and RESPONDER_RISK_EVENT_HUB to take ID Protection's risk logs from their hub`]),
    ...(registry.timers.length
      ? ['', 'Timers (UTC)', ...registry.timers.map((t) => `  ${t.name.padEnd(20)} ${t.schedule}${t.runOnStartup ? ' (and at start-up)' : ''}`)]
      : []),
    '',
    'Try it: send the sample incident, then read what was done and why',
    `  curl -s -X POST ${base}/api/incidents -H "Authorization: Bearer ${bearer}" -H "Content-Type: application/json" --data @cli/samples/incident.json`,
    `  curl -s ${base}/local/ledger -H "Authorization: Bearer ${bearer}"`,
    `  npm run responder -- plan cli/samples/incident.json --url ${base}   # this engine's decision, explained for a human`,
    `  npm run responder -- actions list --url ${base}   # the ledger for analysts: act, approve, deny, rollback (npm run responder -- help)`,
    '',
  ].join('\n');
}

/** On Ctrl-C or SIGTERM: stop the timers and the consumer, close the sandbox, and exit once the server has closed. */
function stopOnSignal(running: {
  timers: TimerDriver;
  queue: DrivenQueue;
  sandbox: Sandbox | undefined;
  server: Server;
  hubs: Array<{ close(): Promise<void> }>;
}): void {
  const stop = () => {
    running.timers.stop();
    for (const hub of running.hubs) void hub.close();
    void running.queue.stop();
    void running.sandbox?.close();
    running.server.close(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/**
 * Load every compiled entry point, as the Functions host does from package.json "main". Each records itself in the
 * registry this host serves from; with no Functions host here, the adapters leave @azure/functions out of it.
 */
function loadFunctions(): void {
  const dir = path.join(__dirname, '../functions');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.js'))) require(path.join(dir, file));
}

/**
 * One request. The host listens on loopback, but a browser page can still reach it (DNS rebinding): a request must name
 * this machine in its Host header, /local/* needs a token with Responder.Read like any route (with
 * RESPONDER_TENANT=azure it shows the real ledger), and no body larger than the cap is read into memory.
 */
async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  { ledger, sandbox, names }: { ledger: ActionLedger; sandbox: Sandbox | undefined; names: ReadonlySet<string> },
): Promise<void> {
  if (!names.has(hostNameOf(req.headers.host))) {
    return send(
      res,
      problem(421, 'MisdirectedRequest', `this local host answers requests to localhost only, not to ${JSON.stringify(req.headers.host ?? '')}`),
    );
  }
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return send(res, problem(400, 'BadRequest', 'the request target is not a path'));
  }
  if (url.pathname.startsWith('/local/')) {
    const refusal = await localRouteRefusal(req);
    if (refusal) return send(res, refusal);
  }
  if (url.pathname === '/local/ledger' && req.method === 'GET') {
    return send(res, { status: 200, jsonBody: { entries: await ledger.list(), deadLetters: await ledger.listDeadLetters() } });
  }
  if (url.pathname === '/local/sandbox' && req.method === 'GET' && sandbox) {
    const t = sandbox.tenant;
    t.advance();
    return send(res, {
      status: 200,
      jsonBody: {
        users: [...t.users.values()],
        riskyUsers: [...t.riskyUsers.values()],
        machines: [...t.machines.values()],
        machineActions: t.machineActions,
        calls: t.calls,
      },
    });
  }
  const below = withoutTrailingSlashes(url.pathname).replace(/^\/api\//, '');
  // Like the Functions host: the route whose template matches and whose methods include this one; else one that
  // matches the path (it answers 405 with the methods it takes).
  const matching = url.pathname.startsWith('/api/')
    ? registry.http.flatMap((r) => {
        const params = matchRoute(r.route, below);
        return params ? [{ r, params }] : [];
      })
    : [];
  const found = matching.find(({ r }) => r.methods.includes((req.method ?? 'GET') as HttpMethod)) ?? matching[0];
  if (!found) return send(res, { status: 404, jsonBody: { error: { code: 'NotFound', message: `no function serves ${url.pathname}` } } });
  const { r: route, params } = found;

  const body = await readCapped(req, config().maxBodyBytes);
  if (body === undefined) {
    // Answer, then stop reading: the rest of the body is never buffered.
    res.on('finish', () => req.destroy());
    return send(res, problem(413, 'PayloadTooLarge', `the body exceeds ${config().maxBodyBytes} bytes (RESPONDER_MAX_BODY_BYTES)`), { close: true });
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  const request = new HttpRequest({
    method: req.method ?? 'GET',
    url: `http://localhost${req.url}`,
    headers,
    params,
    ...(body.length > 0 && { body: { bytes: body } }),
  });
  const context = new InvocationContext({ invocationId: crypto.randomUUID(), functionName: route.name, logHandler: hostLog });
  send(res, await route.handler(request, context));
}

/** The names this machine answers to: loopback, and the address it was told to listen on. */
function localHostNames(host: string): ReadonlySet<string> {
  return new Set([...LOOPBACK_NAMES, ...(host !== '0.0.0.0' ? [host] : [])]);
}

/** `localhost:7071` -> `localhost`, `[::1]:7071` -> `[::1]`. */
function hostNameOf(host: string | undefined): string {
  if (!host) return '';
  const colon = host.lastIndexOf(':');
  return (colon > host.lastIndexOf(']') ? host.slice(0, colon) : host).toLowerCase();
}

/** The same check as every route's: a valid token with Responder.Read, validated by the engine's own code. */
async function localRouteRefusal(req: IncomingMessage): Promise<HttpResponseInit | undefined> {
  try {
    const caller = await authenticate({ get: (name) => headerOf(req, name) }, config());
    if (!caller) throw new AuthError(401, `no credentials: send "Authorization: Bearer $(cat ${LOCAL_TOKEN_FILE})"`);
    authorize(caller, [ROLES.read]);
    return undefined;
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    return problem(error.status, error.status === 401 ? 'Unauthorized' : error.status === 403 ? 'Forbidden' : 'AuthUnavailable', error.message);
  }
}

function headerOf(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name.toLowerCase()];
  return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
}

/** The body, or undefined as soon as it is larger than `cap` bytes (by its declared length, or as it arrives). */
async function readCapped(req: IncomingMessage, cap: number): Promise<Buffer | undefined> {
  if (Number(req.headers['content-length'] ?? 0) > cap) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > cap) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function problem(status: number, code: string, message: string): HttpResponseInit {
  return { status, jsonBody: { error: { code, message } } };
}

/** The path without its trailing slashes: a loop, where `/\/+$/` would be quadratic on a long run of slashes. */
function withoutTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 1 && path.charCodeAt(end - 1) === 0x2f) end--;
  return path.slice(0, end);
}

function send(res: ServerResponse, response: HttpResponseInit, options: { close?: boolean } = {}): void {
  const headers = new Headers(response.headers as Record<string, string> | undefined);
  let body = '';
  if (response.jsonBody !== undefined) {
    headers.set('content-type', 'application/json; charset=utf-8');
    body = JSON.stringify(response.jsonBody, null, 2) + '\n';
  } else if (typeof response.body === 'string') body = response.body;
  if (options.close) headers.set('connection', 'close');
  res.writeHead(response.status ?? 200, Object.fromEntries(headers.entries())).end(body);
}

/** The default policy with its global and per-rule audit modes lifted: for the sandbox demo only. */
function enforcedDefaultPolicy(): string {
  return readFileSync(DEFAULT_POLICY_PATH, 'utf8')
    .replace(/^mode: audit$/m, 'mode: enforce')
    .replace(/^ {4}mode: audit$/gm, '');
}

/**
 * The sandbox serves HTTPS with a throwaway CA made here (.responder/tls), which this process must trust; Node reads
 * NODE_EXTRA_CA_CERTS only at start-up, so the host starts itself again with it set, forwarding signals and exit code.
 */
async function relaunchTrustingSandbox(): Promise<void> {
  const { createSandboxTls } = await import('../sandbox/tlsMaterial.mjs');
  const tls = createSandboxTls(path.resolve(LOCAL_STATE_DIR, 'tls'));
  const child = spawn(process.execPath, [__filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, NODE_EXTRA_CA_CERTS: tls.caPath, RESPONDER_SANDBOX_TLS_DIR: tls.dir, RESPONDER_SANDBOX_CA_TRUSTED: '1' },
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

/** Invocation logs go to stderr, one JSON line each, like the Functions host's console. */
function hostLog(_level: unknown, ...args: unknown[]): void {
  hostLine(...args);
}

/** What the host's own drivers (the hub consumer, the timers) log: they pass no level first, which hostLog would drop. */
function hostLine(...args: unknown[]): void {
  process.stderr.write(`${args.map(String).join(' ')}\n`);
}

/** The Service Bus trigger's settings in host.json, as the Functions host applies them to the actions queue. */
interface ServiceBusTrigger {
  /** maxConcurrentCalls: deliveries at once. */
  concurrency: number;
  /** maxAutoLockRenewalDuration: how long a running delivery's message lock is renewed. */
  maxAutoLockRenewalMs: number;
}

function serviceBusTrigger(): ServiceBusTrigger {
  // From the repository root, not this file's depth: the same whether the host runs from dist/ or from the sources.
  const hostJson = JSON.parse(readFileSync(path.join(REPOSITORY_ROOT, 'host.json'), 'utf8')) as {
    extensions?: { serviceBus?: { maxConcurrentCalls?: number; maxAutoLockRenewalDuration?: string } };
  };
  const serviceBus = hostJson.extensions?.serviceBus;
  return {
    concurrency: serviceBus?.maxConcurrentCalls ?? 16,
    maxAutoLockRenewalMs: timeSpanMs(serviceBus?.maxAutoLockRenewalDuration ?? '00:05:00'),
  };
}

/** A .NET TimeSpan as host.json writes it (`hh:mm:ss`), in milliseconds. */
function timeSpanMs(text: string): number {
  const match = /^(\d+):(\d{2}):(\d{2})$/.exec(text);
  if (!match) throw new Error(`host.json: ${JSON.stringify(text)} is not a duration as hh:mm:ss`);
  const [hours, minutes, seconds] = match.slice(1).map(Number) as [number, number, number];
  return ((hours * 60 + minutes) * 60 + seconds) * 1000;
}

main().catch((error: unknown) => {
  // A client's refusal can quote its connection string whole, key and all (@azure/event-hubs on a hub its EntityPath does not name).
  console.error(`local host failed to start: ${scrubSecrets((error as Error).message)}`);
  process.exit(1);
});
