import { EXECUTORS } from './actions/executors';
import { RETRY_POLICY } from './actions/retryPolicy';
import type { ExecutionContext } from './actions/executor';
import { BatchedDevices, FRESH_MACHINE_MS, LINGER_MS } from './clients/batchedDevices';
import { createDefenderDevices } from './clients/defender';
import { createGraphDirectory } from './clients/graph';
import { SentinelReports } from './clients/sentinel';
import { config, type ResponderConfig } from './config';
import { ENRICHMENT_TIMINGS, Enricher, type EnrichOptions } from './enrichment/enrich';
import { REEVALUATION_TIMINGS } from './queue/reevaluation';
import { heldByAnother, ResponderEngine, type EngineDeps } from './engine';
import type { Signal } from './signals/signal';
import { ActionWorker, type WorkerDeps } from './worker';
import { DeadLetterReconciler } from './deadLetters';
import { AnalystActions } from './analysts';
import { executeCommand, type ExecutionDeps } from './actions/execute';
import { LIFECYCLE_TIMINGS, RUNNING_LEASE_MS, turnWaitMs, type LifecycleTimings } from './actions/lifecycle';
import { FOLLOW_UP_MS } from './actions/isolateDevice';
import { compressed } from './timeScale';
import { reportOutcome, type ReportedAction, type ReportedState } from './actions/report';
import { ConfigError, InputError } from './errors';
import { MemoryLedger } from './ledger/memoryLedger';
import { logger, type Logger } from './log';
import { compilePolicy, type CompiledPolicy } from './policy/decide';
import { DEFAULT_POLICY_PATH, parsePolicy, readPolicyFile } from './policy/load';
import { EmbeddedQueue } from './queue/embeddedQueue';
import type { ActionQueue } from './queue/queue';
import type { ActionLedger } from './ledger/ledger';
import { azureCredential } from './clients/credential';
import type { TokenCredential } from '@azure/identity';
import type { AzureMonitorMetrics } from './clients/azureMonitor';
import { meteredLedger } from './ledger/meteredLedger';
import { BufferedMetrics, NO_METRICS, type Metrics } from './metrics';
import { Pacer, PACER_TIMINGS, type PacedApi } from './coordination/pacer';
import { MemorySharedState, type SharedState } from './coordination/sharedState';
import type { Runtime, RuntimeOverrides } from './runtime';
import { Sweeps } from './sweeps/runner';
import { SWEEP_TIMINGS } from './sweeps/sweep';

/**
 * Where the engine's parts are chosen and wired: the one place to read to know what runs. The queue is Service Bus
 * and the ledger Table storage whenever their standard app settings are present (always in Azure: config.ts refuses
 * to run there without them); otherwise the in-memory twins, which the local host drives itself. The Graph and
 * Defender clients are built on the first action, once per process.
 */
export async function compose(overrides: RuntimeOverrides): Promise<Runtime> {
  const settings = config();
  if (settings.problems.length > 0) throw new ConfigError('the engine is not configured', settings.problems);
  const policy = loadPolicy(settings);
  const stored = overrides.ledger ? { ledger: overrides.ledger, shared: overrides.shared ?? new MemorySharedState() } : await openLedger(settings);
  const metrics = overrides.metrics ?? openMetrics(settings, logger());
  const ledger = meteredLedger(stored.ledger, metrics, overrides.now ?? (() => new Date()));
  const shared = overrides.shared ?? stored.shared;
  const queue = overrides.queue ?? (await openQueue(settings));
  const scale = settings.timeScale;
  if (scale !== 1)
    logger().warn({ timeScale: scale }, `time runs ${scale}x faster: every budget, lease and wait is compressed (a drill on the sandbox, never a real tenant)`);
  const pacer = new Pacer(shared, compressed(settings.rateLimits, scale), {
    ...compressed(PACER_TIMINGS, scale),
    onWait: (api, ms) => metrics.pacingWait(api, ms / 1000, 'inline'),
  });
  const pace = (api: PacedApi) => pacer.take(api);
  let clients: Promise<ExecutionContext> | undefined;
  const executionContext =
    overrides.executionContext ??
    (() =>
      (clients ??= (async () => ({
        directory: await createGraphDirectory(settings, pace),
        devices:
          settings.endpoints.defender === undefined
            ? undefined
            : new BatchedDevices(await createDefenderDevices(settings, pace), {
                ...compressed({ freshMachineMs: FRESH_MACHINE_MS, lingerMs: LINGER_MS }, scale),
                congested: () => pacer.underPressure('defender-isolate') || pacer.underPressure('defender-unisolate'),
              }),
        incidents: new SentinelReports(settings),
      }))()));
  const enricher = settings.enrichment ? new Enricher(executionContext, Date.now, undefined, compressed(ENRICHMENT_TIMINGS, scale)) : undefined;
  const { engine, worker, deadLetters, analysts } = assemble({
    policy,
    ledger,
    queue,
    shared,
    pacer,
    modeOverride: settings.modeOverride,
    now: overrides.now ?? (() => new Date()),
    log: logger(),
    executors: EXECUTORS,
    executionContext,
    metrics,
    ...(enricher && {
      enrich: (signal: Signal, compiled: CompiledPolicy, options: EnrichOptions = {}) => {
        const withPolicy = { ...options, protection: compiled.protection };
        return options.preview
          ? pacer.sparing(() => enricher.enrich(signal, compiled.groupsOfInterest, withPolicy))
          : enricher.enrich(signal, compiled.groupsOfInterest, withPolicy);
      },
    }),
    reevaluation: compressed(REEVALUATION_TIMINGS, scale),
    timings: compressed(
      {
        ...LIFECYCLE_TIMINGS,
        retry: settings.retryBaseMs === undefined ? RETRY_POLICY : { ...RETRY_POLICY, baseMs: settings.retryBaseMs },
        leaseMs: settings.runningLeaseMs ?? RUNNING_LEASE_MS,
        followUpMs: settings.followUpMs ?? FOLLOW_UP_MS,
      },
      scale,
    ),
  });
  const sweeps = new Sweeps({
    shared,
    ledger,
    engine,
    analysts,
    directory: async () => (await executionContext()).directory,
    incidents: async () => (await executionContext()).incidents,
    workspaces: settings.workspaces,
    policy,
    now: overrides.now ?? (() => new Date()),
    log: logger(),
    timings: compressed({ ...SWEEP_TIMINGS, missedLookBackMs: settings.missedLookBackMs ?? SWEEP_TIMINGS.missedLookBackMs }, scale),
    sparing: <T>(read: () => Promise<T>) => pacer.sparing(read),
  });
  return {
    config: settings,
    policy,
    engine,
    sweeps,
    worker,
    deadLetters,
    analysts,
    ledger,
    queue,
    shared,
    compileDraftPolicy: (text) => compileDraftPolicy(text, settings.engineIdentities),
    queueStats: () => (queue instanceof EmbeddedQueue ? queue.stats() : undefined),
  };
}

/** Everything the engine's parts are made of: the adapters and settings compose() chooses (or a test's). */
export type EngineParts = Omit<EngineDeps, 'incidents'> &
  Omit<ExecutionDeps, 'policy' | 'modeOverride' | 'entryOf' | 'heldByAnother'> &
  Pick<WorkerDeps, 'timings' | 'random'> & { metrics?: Metrics };

/** The engine, its worker and the dead-letter reconciler, each given the parts it uses. */
export function assemble(parts: EngineParts): { engine: ResponderEngine; worker: ActionWorker; deadLetters: DeadLetterReconciler; analysts: AnalystActions } {
  const { ledger, queue, shared, now, log } = parts;
  const incidents = async () => (await parts.executionContext()).incidents;
  const report = (action: ReportedAction, state: ReportedState, detail: string, attempts: number, reportLog: Logger) =>
    reportOutcome(incidents, action, state, detail, attempts, reportLog);
  const engine = new ResponderEngine({
    policy: parts.policy,
    ledger,
    queue,
    shared,
    modeOverride: parts.modeOverride,
    now,
    log,
    incidents,
    ...(parts.enrich && { enrich: parts.enrich }),
    ...(parts.reevaluation && { reevaluation: parts.reevaluation }),
    ...(parts.pacer && { pacing: pacingOf(parts.pacer, parts.executors, parts.timings, parts.metrics ?? NO_METRICS) }),
  });
  const worker = new ActionWorker({
    ledger,
    queue,
    shared,
    now,
    log,
    timings: parts.timings,
    ...(parts.random && { random: parts.random }),
    ...(parts.metrics && { metrics: parts.metrics }),
    execute: (command, commandLog) =>
      executeCommand(
        { ...parts, entryOf: (key) => ledger.get(key), heldByAnother: async (original) => (await heldByAnother(ledger, original))?.message },
        command,
        commandLog,
      ),
    report,
    incidents,
    submit: (signal, by, submitLog, reevaluation) => engine.submit(signal, by, submitLog, reevaluation),
  });
  return {
    engine,
    worker,
    deadLetters: new DeadLetterReconciler({ ledger, queue, now, log, report }),
    analysts: new AnalystActions({ ledger, queue, policy: parts.policy, now, log, report }),
  };
}

/** An action's turn at the budgets its writes need, and how long it waits to be delivered: to a lead ahead, as a deferral. */
function pacingOf(pacer: Pacer, executors: EngineParts['executors'], timings: LifecycleTimings, metrics: Metrics): EngineDeps['pacing'] {
  return async (command) => {
    const turn = await pacer.turnFor(executors[command.kind]?.apiCost(command) ?? {});
    if (turn === undefined) return undefined;
    const waitMs = turnWaitMs(pacer.msUntil(turn), timings);
    if (waitMs > 0) metrics.pacingWait(turn.api, waitMs / 1000, 'queued');
    return { turn, waitMs };
  };
}

/** How long after the runtime is built the metrics exporter loads: the first request is answered by then. */
const METRICS_START_DELAY_MS = 10_000;

/** The process's one exporter (whatever rebuilds the runtime): its buffer, and how to start it. */
let exporting: { connectionString: string; metrics: Metrics; start(): Promise<AzureMonitorMetrics | undefined> } | undefined;

/**
 * Metrics go to Application Insights when its connection string is set, else nowhere. The exporter (the OpenTelemetry
 * SDK, about 250 ms to load) is imported on a timer, never by a request and never at cold start; points recorded until
 * then are kept in a bounded buffer and handed to it.
 */
function openMetrics(settings: ResponderConfig, log: Logger): Metrics {
  const target = settings.metrics;
  if (!target) return NO_METRICS;
  if (exporting?.connectionString === target.connectionString) return exporting.metrics;
  const buffer = new BufferedMetrics();
  let started: Promise<AzureMonitorMetrics | undefined> | undefined;
  const start = () =>
    (started ??= (async () => {
      try {
        const [{ openAzureMonitorMetrics }, credential] = await Promise.all([
          import('./clients/azureMonitor.js'),
          metricsCredential(settings, target.clientId),
        ]);
        const exporter = openAzureMonitorMetrics({ connectionString: target.connectionString, credential });
        const { replayed, dropped } = buffer.attach((point) => exporter.record(point));
        const lost = dropped > 0 ? `; ${dropped} points recorded before it started were dropped` : '';
        log.info({ replayed, dropped }, `metrics: exporting to Application Insights${lost}`);
        return exporter;
      } catch (error) {
        log.error({ err: error, lost: buffer.discard() }, 'metrics: the Application Insights exporter could not start: no metrics are exported');
        return undefined;
      }
    })());
  exporting = { connectionString: target.connectionString, metrics: buffer.metrics, start };
  // Unref'd: a CLI or test process that built a runtime may still exit.
  setTimeout(() => void start(), METRICS_START_DELAY_MS).unref();
  return buffer.metrics;
}

/** Send what the metrics hold now, starting the exporter first if it has not started (the host stops the instance). */
export async function flushMetrics(): Promise<void> {
  await (await exporting?.start())?.flush();
}

/** The user-assigned identity APPLICATIONINSIGHTS_AUTHENTICATION_STRING names, else the engine's own credential. */
async function metricsCredential(settings: ResponderConfig, clientId: string | undefined): Promise<TokenCredential> {
  if (clientId === undefined) return azureCredential(settings.authorityHost);
  const { ManagedIdentityCredential } = await import('@azure/identity');
  return new ManagedIdentityCredential({ clientId });
}

/**
 * Table storage when AzureWebJobsStorage says where, with the shared records (budgets, leases) in the same table;
 * else both in memory (local host and tests only).
 */
async function openLedger(settings: ResponderConfig): Promise<{ ledger: ActionLedger; shared: SharedState }> {
  const storage = settings.storage;
  if (!storage) return { ledger: new MemoryLedger(), shared: new MemorySharedState() };
  const [{ openTableLedger }, { TableSharedState }] = await Promise.all([import('./ledger/tableLedger.js'), import('./coordination/tableSharedState.js')]);
  const location = 'connectionString' in storage ? storage : { ...storage, credential: await azureCredential(settings.authorityHost) };
  const ledger = await openTableLedger(location, settings.ledgerTable);
  return { ledger, shared: new TableSharedState(ledger.table) };
}

/** Service Bus when ServiceBusConnection says where; else the embedded queue (local host and tests only). */
async function openQueue(settings: ResponderConfig): Promise<ActionQueue> {
  const serviceBus = settings.serviceBus;
  if (!serviceBus) return new EmbeddedQueue();
  const { ServiceBusActionQueue, createServiceBusClient } = await import('./queue/serviceBusQueue.js');
  const connection =
    'connectionString' in serviceBus
      ? ({ kind: 'connectionString', ...serviceBus } as const)
      : ({ kind: 'identity', ...serviceBus, credential: await azureCredential(settings.authorityHost) } as const);
  return new ServiceBusActionQueue(createServiceBusClient(connection));
}

function compileDraftPolicy(text: string, engineIdentities: string[]): CompiledPolicy {
  try {
    return compilePolicy(parsePolicy(text, 'the draft policy'), engineIdentities);
  } catch (error) {
    if (error instanceof ConfigError) throw new InputError('policy', error.message);
    throw error;
  }
}

/** RESPONDER_POLICY (inline) wins over RESPONDER_POLICY_PATH, which wins over the built-in default. */
export function loadPolicy(settings: Pick<ResponderConfig, 'policyText' | 'policyPath' | 'engineIdentities'>): CompiledPolicy {
  const loaded = settings.policyText ? parsePolicy(settings.policyText, 'RESPONDER_POLICY') : readPolicyFile(settings.policyPath ?? DEFAULT_POLICY_PATH);
  if (!settings.policyText && !settings.policyPath) loaded.origin = 'built-in default';
  return compilePolicy(loaded, settings.engineIdentities);
}
