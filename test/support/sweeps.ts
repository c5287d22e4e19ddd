import { createGraphDirectory } from '../../shared/clients/graph';
import { SentinelReports } from '../../shared/clients/sentinel';
import { logger } from '../../shared/log';
import { runtime } from '../../shared/runtime';
import { readOnce, SWEEP_TIMINGS, type SweepContext, type SweepDeps } from '../../shared/sweeps/sweep';

/**
 * The engine's own parts as a sweep uses them (the runtime's), for a Sweeps runner or a page of a test's making: a
 * lease of a minute, real clients on the configured endpoints, and `overrides` over all of it.
 */
export async function sweepDeps(overrides: Partial<SweepDeps> = {}): Promise<SweepDeps> {
  const { shared, ledger, engine, analysts, policy, config } = await runtime();
  return {
    shared,
    ledger,
    engine,
    analysts,
    policy,
    directory: async () => createGraphDirectory(config),
    incidents: async () => new SentinelReports(config),
    workspaces: config.workspaces,
    now: () => new Date(),
    log: logger(),
    timings: { ...SWEEP_TIMINGS, leaseMs: 60_000 },
    ...overrides,
  };
}

/** A page's view of a run started now, as `by`. */
export async function sweepContext(overrides: Partial<SweepDeps> = {}, by = 'sweep:test'): Promise<SweepContext> {
  return { ...(await sweepDeps(overrides)), by, startedAt: new Date(), once: readOnce() };
}
