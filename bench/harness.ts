/**
 * What the pipeline benchmarks share: the emulated world (the sandbox tenant over HTTPS, the Service Bus emulator over
 * AMQP, Azurite), the local host as a child process, the incidents they send, and the figures they compute.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Sandbox } from '../sandbox/server';
import { ServiceBusEmulator } from '../sandbox/serviceBus';
import { Azurite } from '../test/support/azurite';
import { startLocalHost } from '../test/support/localHost';
import { buildIncident } from '../test/fixtures/incidents';

export interface World {
  sandbox: Sandbox;
  broker: ServiceBusEmulator;
  azurite: Azurite;
  /** A token with the relay's role, good for the whole run. */
  token: string;
}

/**
 * The processes a run starts (Azurite, local hosts): stopped however the run ends. Interrupted or killed, or with its
 * output cut short (`| head`), the benchmark would otherwise leave them running, holding a core.
 */
const children: Array<() => void> = [];
process.on('exit', () => {
  for (const stop of children) stop();
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => process.exit(1));

export async function startWorld(): Promise<World> {
  const [sandbox, broker, azurite] = await Promise.all([Sandbox.start(), new ServiceBusEmulator().start(), Azurite.start()]);
  children.push(() => azurite.stop());
  const token = await sandbox.authority.token(['Incidents.Submit'], {}, { expiresIn: '1h' });
  return { sandbox, broker, azurite, token };
}

export async function stopWorld({ sandbox, broker, azurite }: World): Promise<void> {
  await Promise.all([sandbox.close(), broker.stop()]);
  azurite.stop();
}

/** The host's errors show in the benchmark's output. */
const HOST_STDIO: StdioOptions = ['ignore', 'ignore', 'inherit'];

/**
 * The Node arguments the deployment gives the worker on the smallest Flex Consumption instance (512 MB, infra/README.md):
 * V8 sizes its heap from the memory it sees, 24 GiB here, so without them the bench would measure garbage V8 has no
 * reason to collect rather than the worker as deployed.
 */
export const WORKER_NODE_ARGUMENTS = '--max-old-space-size=256';

/** The local host on the world's broker, storage and tenant, with its own ledger table and a fresh `actions` queue. */
export async function startHost(world: World, table: string, settings: Record<string, string>): Promise<{ child: ChildProcess; base: string }> {
  world.broker.createQueue('actions');
  const host = await startLocalHost(
    {
      ...world.sandbox.settings(),
      ServiceBusConnection: world.broker.connectionString,
      AzureWebJobsStorage: world.azurite.connectionString,
      RESPONDER_LEDGER_TABLE: table,
      languageWorkers__node__arguments: WORKER_NODE_ARGUMENTS,
      ...settings,
    },
    HOST_STDIO,
  );
  children.push(() => host.child.kill('SIGTERM'));
  return host;
}

/** The ids of the i-th incident's user and device. */
export const userId = (i: number): string => `b0000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
export const deviceId = (i: number): string => `be${i.toString(16).padStart(38, '0')}`;

/** In the sandbox: user i at high risk and device i at high risk, both with nothing that protects them. */
export function addRiskyPair(sandbox: Sandbox, i: number): void {
  const { tenant } = sandbox;
  tenant.addUser({ id: userId(i), userPrincipalName: `bench.user${i}@contoso.com`, displayName: `Bench user ${i}` });
  tenant.setRisk(userId(i), 'high');
  tenant.addMachine({ id: deviceId(i), computerDnsName: `bench-${i}.contoso.com`, riskScore: 'High', machineTags: ['workstation'] });
}

/** Incident i as Sentinel's automation rule sends it: one account and one host, named by the directory's ids. */
export function incidentFor(i: number, parts: { user: boolean } = { user: true }): Record<string, unknown> {
  const incident = buildIncident({ accounts: parts.user ? 1 : 0, hosts: 1, incidentName: `bench-${i}` });
  for (const entity of incident.object.properties.relatedEntities as Array<{ kind: string; properties: Record<string, any> }>) {
    if (entity.kind === 'Account') {
      entity.properties.accountName = `bench.user${i}`;
      entity.properties.aadUserId = userId(i);
    } else {
      entity.properties.hostName = `BENCH-${i}`;
      entity.properties.additionalData.MdatpDeviceId = deviceId(i);
    }
  }
  return incident;
}

export async function post(base: string, token: string, body: unknown): Promise<number> {
  for (let tries = 0; ; tries++) {
    const res = await fetch(`${base}/api/incidents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await res.arrayBuffer();
    if (res.status === 202 || tries > 5) return res.status;
  }
}

/** The child's peak resident set (Linux VmHWM), in MiB. */
export function peakRssMiB(child: ChildProcess): number {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

export const percentile = (xs: number[], p: number): number =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] as number;

let lastProgress = 0;
/** Progress on stderr, at most every 5 s: a long wait should not look like a hang. */
export function progress(message: string): void {
  if (Date.now() - lastProgress < 5000) return;
  lastProgress = Date.now();
  process.stderr.write(`  … ${message}\n`);
}

export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A figure, its target, and whether it met it: what the benchmark prints and exits on. */
export interface Figure {
  name: string;
  value: string;
  target: string;
  ok: boolean;
}

export function printFigures(title: string, lines: string[], figures: Figure[]): void {
  console.log(`\n${title}`);
  for (const line of lines) console.log(`  ${line}`);
  const width = Math.max(...figures.map((f) => f.name.length));
  for (const f of figures) console.log(`  ${f.name.padEnd(width)}  ${f.value.padStart(10)}  (target ${f.target})  ${f.ok ? 'ok' : 'MISSED'}`);
}
