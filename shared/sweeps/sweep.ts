import type { Directory } from '../clients/graph';
import type { SentinelIncidents } from '../clients/sentinel';
import type { SharedState } from '../coordination/sharedState';
import type { AnalystActions } from '../analysts';
import type { ResponderEngine } from '../engine';
import type { ActionLedger } from '../ledger/ledger';
import type { Logger } from '../log';
import type { CompiledPolicy } from '../policy/decide';
import type { WorkspaceRef } from '../signals/identifiers';
import type { Signal } from '../signals/signal';

/**
 * What a sweep is made of: where it reads a page of what it looks for, and what each thing found comes to. The runner
 * (runner.ts) gives every sweep the same lease, place, time bound and dry run; each sweep's own file says only what it
 * looks for and why.
 */
export interface SweepDefinition {
  /** The app setting that schedules it (NCRONTAB, six fields, UTC), and its schedule when unset. */
  setting: string;
  schedule: string;
  /** One page, from `cursor` (a place an earlier page gave, kept across runs), or from the start. */
  page(context: SweepContext, cursor: string | undefined): Promise<SweepPage>;
}

/** One page of what a sweep finds, and where the next page starts (none: the sweep is through). */
export interface SweepPage {
  findings: Finding[];
  /** Found but asking for nothing (a state or level no rule acts on, a record that could not be read), with why. */
  passedOver: string[];
  next?: string;
}

/** One thing a sweep found, and what doing something about it comes to (a dry run: what it would come to). */
export interface Finding {
  subject: string;
  act(dryRun: boolean): Promise<{ summary: string; planned: number }>;
}

/**
 * How long a run holds its sweep without renewing it, and how long it works before it stops after a page; when an
 * action counts as stuck: planned this long, queued with nothing due and nothing done this long, running this long past
 * its lease; how far back missedIncidents looks, and how long it leaves a new incident to the relay.
 */
export interface SweepTimings {
  leaseMs: number;
  budgetMs: number;
  plannedStuckMs: number;
  queuedStuckMs: number;
  runningStuckMs: number;
  /** How old a containment falsePositives still weighs undoing: an older one is an analyst's to roll back by hand. */
  falsePositiveLookBackMs: number;
  missedLookBackMs: number;
  missedGraceMs: number;
}

export const SWEEP_TIMINGS: SweepTimings = {
  leaseMs: 10 * 60_000,
  budgetMs: 5 * 60_000,
  plannedStuckMs: 5 * 60_000,
  queuedStuckMs: 60 * 60_000,
  runningStuckMs: 5 * 60_000,
  falsePositiveLookBackMs: 30 * 24 * 60 * 60_000,
  missedLookBackMs: 24 * 60 * 60_000,
  // The relay's first post and its retries on 503 (Logic Apps: four, exponential, within minutes) come first.
  missedGraceMs: 15 * 60_000,
};

/** What a sweep may read and do. */
export interface SweepDeps {
  shared: SharedState;
  ledger: Pick<ActionLedger, 'list' | 'get' | 'decisionOn' | 'listDecisions'>;
  engine: Pick<ResponderEngine, 'submit' | 'plan' | 'resend' | 'rollback'>;
  /** To withdraw what a sweep proposed once what it stood on no longer holds (as its proposer denies it). */
  analysts: Pick<AnalystActions, 'deny'>;
  directory: () => Promise<Directory>;
  incidents: () => Promise<SentinelIncidents>;
  /** The Sentinel workspaces missedIncidents lists (RESPONDER_SENTINEL_WORKSPACES). */
  workspaces: readonly WorkspaceRef[];
  policy: CompiledPolicy;
  now: () => Date;
  log: Logger;
  timings: SweepTimings;
  /** Run reads a dry run makes within what containment can spare (Pacer.sparing); as they are without it. */
  sparing?: <T>(read: () => Promise<T>) => Promise<T>;
}

/** A page's view of the run: what it may use, who it acts as, and when the run started. */
export interface SweepContext extends SweepDeps {
  by: string;
  startedAt: Date;
  /** `read`'s answer, read on the run's first page that asks for `name` and kept for its later pages. */
  once<T>(name: string, read: () => Promise<T>): Promise<T>;
}

/** A run's `once`: each name read at most once a run (a ledger list is a table scan, not to repeat per page). */
export function readOnce(): SweepContext['once'] {
  const read = new Map<string, Promise<unknown>>();
  return <T>(name: string, fresh: () => Promise<T>): Promise<T> => {
    if (!read.has(name)) read.set(name, fresh());
    return read.get(name) as Promise<T>;
  };
}

/** A signal found: decided as any other (a dry run: planned, nothing recorded). */
export function decided(context: SweepContext, signal: Signal): Finding {
  return {
    subject: signal.subject,
    act: async (dryRun) => {
      const decision = dryRun ? await context.engine.plan(signal) : (await context.engine.submit(signal, context.by, context.log)).decision;
      return { summary: decision.summary, planned: decision.actions.length };
    },
  };
}
