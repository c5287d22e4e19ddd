import type { ExecutionContext } from './actions/executor';
import type { ResponderConfig } from './config';
import type { ResponderEngine } from './engine';
import type { ActionWorker } from './worker';
import type { DeadLetterReconciler } from './deadLetters';
import type { AnalystActions } from './analysts';
import type { ActionLedger } from './ledger/ledger';
import type { CompiledPolicy } from './policy/decide';
import type { ActionQueue } from './queue/queue';
import type { SharedState } from './coordination/sharedState';
import type { Sweeps } from './sweeps/runner';
import type { Metrics } from './metrics';

/**
 * The process's engine and its adapters, built on first use. Only types are imported here: the function entry
 * points import this file at cold start, and the engine (zod, yaml, the policy) loads on the first request instead.
 */
export interface Runtime {
  config: ResponderConfig;
  policy: CompiledPolicy;
  engine: ResponderEngine;
  worker: ActionWorker;
  deadLetters: DeadLetterReconciler;
  /** The analysts' side: list, show, approve, deny. */
  analysts: AnalystActions;
  ledger: ActionLedger;
  queue: ActionQueue;
  /** Records every instance shares: API and cap budgets, device leases. */
  shared: SharedState;
  /** The scheduled remediation sweeps, also run on demand. */
  sweeps: Sweeps;
  /** Compile a policy a caller sent (POST /api/plan): problems are the caller's, so they raise InputError (400). */
  compileDraftPolicy(text: string): CompiledPolicy;
  /** What the queue holds now, for health details. */
  queueStats(): Record<string, number> | undefined;
}

/** Adapters the local host or a test supplies instead of the defaults. */
export interface RuntimeOverrides {
  ledger?: ActionLedger;
  queue?: ActionQueue;
  shared?: SharedState;
  now?: () => Date;
  executionContext?: () => Promise<ExecutionContext>;
  /** Where metrics go instead of the exporter the settings name (tests: MemoryMetrics). */
  metrics?: Metrics;
}

let overrides: RuntimeOverrides = {};
let building: Promise<Runtime> | undefined;

export function runtime(): Promise<Runtime> {
  if (!building) {
    building = import('./composition.js').then((m) => m.compose(overrides));
    // A configuration error is not remembered: the next request tries again (after the setting is fixed).
    building.catch(() => (building = undefined));
  }
  return building;
}

/** Replace adapters before the next use (the local host at start-up, tests between cases). */
export function configureRuntime(next: RuntimeOverrides): void {
  overrides = next;
  building = undefined;
}

/** Send the metrics not sent yet, when the host stops the instance; nothing to send if the engine was never built. */
export async function flushMetrics(): Promise<void> {
  if (!building) return;
  await (await import('./composition.js')).flushMetrics();
}
