import { randomUUID } from 'node:crypto';
import { classifyFailure } from './actions/failure';
import type { Directory } from './clients/graph';
import type { SharedState } from './coordination/sharedState';
import type { ResponderEngine } from './engine';
import type { ActionLedger, LedgerEntry } from './ledger/ledger';
import type { Logger } from './log';
import type { CompiledPolicy } from './policy/decide';
import { normalizeRiskRecords } from './signals/risk';
import type { Signal, UserRiskLevel } from './signals/signal';

/**
 * Scheduled remediation sweeps: what the event-driven paths missed, found by reading the source of truth again. Each
 * run is single across instances (a lease in the shared records), resumable (its place is kept after every page, and
 * a run killed halfway is resumed from there once its lease lapses), bounded in time (a run that takes too long stops
 * after a page and the next goes on), idempotent (what it submits is keyed like the events it stands in for, so the
 * ledger drops what was already decided), and can be tried without effect (a dry run plans, records nothing, keeps no
 * place and takes no lease).
 */
export const SWEEP_NAMES = ['riskyUsers', 'stuckActions'] as const;
export type SweepName = (typeof SWEEP_NAMES)[number];

/**
 * When each sweep runs (NCRONTAB, six fields, UTC), from its app setting, else the default: riskyUsers every 30 minutes,
 * twice inside ID Protection's own refresh of a user's risk, at one request a second a page of 500 users.
 */
export const SWEEP_SCHEDULES: Record<SweepName, { setting: string; schedule: string }> = {
  riskyUsers: { setting: 'RESPONDER_SWEEP_RISKYUSERS', schedule: '0 */30 * * * *' },
  // Well after the relay's retries and a lapsed lease's takeover, which resolve most of what it would find.
  stuckActions: { setting: 'RESPONDER_SWEEP_STUCKACTIONS', schedule: '0 7,37 * * * *' },
};

export function sweepSchedule(name: SweepName, env: NodeJS.ProcessEnv = process.env): string {
  const { setting, schedule } = SWEEP_SCHEDULES[name];
  return env[setting]?.trim() || schedule;
}

/** The sweep a caller names, or undefined. */
export function sweepNamed(text: string | undefined): SweepName | undefined {
  return SWEEP_NAMES.find((name) => name.toLowerCase() === text?.toLowerCase());
}

/**
 * How long a run holds its sweep without renewing it, and how long it works before it stops after a page; when an
 * action counts as stuck: planned this long, queued with nothing due and nothing done this long, running this long past
 * its lease.
 */
export interface SweepTimings {
  leaseMs: number;
  budgetMs: number;
  plannedStuckMs: number;
  queuedStuckMs: number;
  runningStuckMs: number;
}
export const SWEEP_TIMINGS: SweepTimings = {
  leaseMs: 10 * 60_000,
  budgetMs: 5 * 60_000,
  plannedStuckMs: 5 * 60_000,
  queuedStuckMs: 60 * 60_000,
  runningStuckMs: 5 * 60_000,
};

/** One thing a sweep found, and what doing something about it comes to (a dry run: what it would come to). */
interface Finding {
  subject: string;
  act(dryRun: boolean): Promise<{ summary: string; planned: number }>;
}

/** One page of what a sweep finds, and where the next page starts (none: the sweep is through). */
interface SweepPage {
  findings: Finding[];
  /** Found but asking for nothing (a state or level no rule acts on, a record that could not be read), with why. */
  passedOver: string[];
  next?: string;
}

/** What a run did: said to the caller, the log, and kept as the sweep's last run in the shared records. */
export interface SweepRun {
  sweep: SweepName;
  dryRun: boolean;
  /**
   * completed: through; paused: its time ran out, the next run goes on from its place; busy: another run holds it;
   * failed: a read or a decision failed, and the next run goes on from the last page kept (from the start when the API
   * refused it for good).
   */
  outcome: 'completed' | 'paused' | 'busy' | 'failed';
  startedAt: string;
  endedAt: string;
  /** Whether it began where a run before it stopped. */
  resumed: boolean;
  pages: number;
  found: number;
  /** Actions planned (a dry run: that would be), across what it found; each already decided is not counted. */
  planned: number;
  passedOver: number;
  /** What it found, each with the decision's one line: at most MAX_LISTED. */
  findings: Array<{ subject: string; summary: string }>;
  summary: string;
}

/** Findings a run lists in full; the counts cover the rest. */
const MAX_LISTED = 50;
/** Findings the sweep's record keeps of its last run (each up to a decision's one line). */
const KEPT_FINDINGS = 10;

/** A sweep's shared record: the run holding it, where the next run starts, and what the last run did. */
interface SweepRecord {
  lease?: { holder: string; until: number };
  cursor?: string;
  last?: SweepRun;
}

export interface SweepDeps {
  shared: SharedState;
  ledger: Pick<ActionLedger, 'list'>;
  engine: Pick<ResponderEngine, 'submit' | 'plan' | 'resend'>;
  directory: () => Promise<Directory>;
  policy: CompiledPolicy;
  now: () => Date;
  log: Logger;
  timings: SweepTimings;
  /** Run reads a dry run makes within what containment can spare (Pacer.sparing); as they are without it. */
  sparing?: <T>(read: () => Promise<T>) => Promise<T>;
}

export class Sweeps {
  constructor(private readonly deps: SweepDeps) {}

  /** What the sweep's last run did, if any has run. */
  async last(name: SweepName): Promise<SweepRun | undefined> {
    return (await this.deps.shared.update<SweepRecord, SweepRecord | undefined>(keyOf(name), (r) => ({ next: r, result: r })))?.last;
  }

  /** Run `name`: for `budgetMs` at most (the sweep's own by default), then stop after a page for the next run to go on. */
  async run(
    name: SweepName,
    { dryRun = false, by = `sweep:${name}`, budgetMs = this.deps.timings.budgetMs }: { dryRun?: boolean; by?: string; budgetMs?: number } = {},
  ): Promise<SweepRun> {
    const started = this.deps.now();
    const holder = randomUUID();
    const claim = dryRun ? { claimed: true as const, cursor: undefined } : await this.claim(name, holder, started.getTime());
    const run: SweepRun = {
      sweep: name,
      dryRun,
      outcome: 'completed',
      startedAt: started.toISOString(),
      endedAt: '',
      resumed: claim.claimed && claim.cursor !== undefined,
      pages: 0,
      found: 0,
      planned: 0,
      passedOver: 0,
      findings: [],
      summary: '',
    };
    if (!claim.claimed) return this.finish(run, `another run holds the sweep until ${new Date(claim.until).toISOString()}`, 'busy');
    try {
      return await this.pages(run, holder, claim.cursor, by, budgetMs);
    } catch (error) {
      // A read or a decision that failed ends the run, not the sweep: the next run goes on from the last page kept, unless
      // the API refused for good (a page token past its life answers 400): kept, that place would fail every run after.
      const keepPlace = classifyFailure(error).class !== 'permanent';
      if (!dryRun) await this.release(name, holder, this.finish(run, `failed: ${String(error).slice(0, 200)}`, 'failed'), undefined, keepPlace);
      throw error;
    }
  }

  private async pages(run: SweepRun, holder: string, from: string | undefined, by: string, budgetMs: number): Promise<SweepRun> {
    const { now } = this.deps;
    const { sweep: name, dryRun } = run;
    const started = new Date(run.startedAt);
    let cursor = from;
    let why: string | undefined;
    const followed = new Set(from === undefined ? [] : [from]);
    for (;;) {
      // A dry run is a what-if: its reads must not spend the budget containment needs, as a plan's do not.
      const read = () => this.page(name, cursor, by);
      const page = dryRun && this.deps.sparing ? await this.deps.sparing(read) : await read();
      run.pages++;
      run.passedOver += page.passedOver.length;
      for (const finding of page.findings) {
        const { summary, planned } = await finding.act(dryRun);
        run.found++;
        run.planned += planned;
        if (run.findings.length < MAX_LISTED) run.findings.push({ subject: finding.subject, summary });
      }
      cursor = page.next;
      if (cursor === undefined) break;
      // Graph has answered the link just followed (a service bug seen on some collections): kept, that place would page in
      // a circle until every run's time ran out.
      if (followed.has(cursor)) {
        why = 'Graph answered a next link it had already given: the next run starts from the top';
        break;
      }
      followed.add(cursor);
      if (!dryRun && !(await this.keepPlace(name, holder, cursor))) return this.finish(run, 'its lease lapsed and another run took the sweep over', 'paused');
      if (now().getTime() - started.getTime() >= budgetMs) {
        const paused = this.finish(run, 'its time ran out: the next run goes on from here', 'paused');
        if (!dryRun) await this.release(name, holder, paused, cursor);
        return paused;
      }
    }
    const done = this.finish(run, why, 'completed');
    if (!dryRun) await this.release(name, holder, done, undefined);
    return done;
  }

  private async page(name: SweepName, cursor: string | undefined, by: string): Promise<SweepPage> {
    switch (name) {
      case 'riskyUsers':
        return this.riskyUsersPage(cursor, by);
      case 'stuckActions':
        return this.stuckActionsPage(by);
    }
  }

  /**
   * Users ID Protection still rates at risk or confirmed compromised, at the levels the policy's rules act on (high if
   * none says), as the RiskyUsers stream would have brought them: each keyed by the user and when their risk last
   * changed, so a change the events already brought is found decided.
   */
  private async riskyUsersPage(cursor: string | undefined, by: string): Promise<SweepPage> {
    const directory = await this.deps.directory();
    const { users, next } = await directory.riskyUsersPage(levelsActedOn(this.deps.policy), cursor);
    const page: SweepPage = { findings: [], passedOver: [], ...(next !== undefined && { next }) };
    for (const record of normalizeRiskRecords({ records: users.map((properties) => ({ category: 'RiskyUsers', properties })) })) {
      if (record.status === 'signal') page.findings.push(this.decided({ ...record.signal, source: 'sweep' }, by));
      else page.passedOver.push(record.status === 'ignored' ? record.reason : `${record.field}: ${record.problem}`);
    }
    return page;
  }

  /** A signal found: decided as any other (a dry run: planned, nothing recorded). */
  private decided(signal: Signal, by: string): Finding {
    return {
      subject: signal.subject,
      act: async (dryRun) => {
        const decision = dryRun ? await this.deps.engine.plan(signal) : (await this.deps.engine.submit(signal, by, this.deps.log)).decision;
        return { summary: decision.summary, planned: decision.actions.length };
      },
    };
  }

  /**
   * Actions the pipeline left behind: planned and never sent (the relay did not retry after a 503), queued whose
   * message is gone (none is due and nothing has happened for an hour), running whose worker died after its message
   * was settled (its lease long lapsed). Each is sent again under its own MessageId: a copy still in the queue is
   * dropped as a duplicate, and a second delivery finds the action claimed or done, so nothing runs twice. The ledger
   * is read whole (one page).
   */
  private async stuckActionsPage(by: string): Promise<SweepPage> {
    const now = this.deps.now().getTime();
    const page: SweepPage = { findings: [], passedOver: [] };
    for (const state of ['planned', 'queued', 'running'] as const) {
      for (const entry of await this.deps.ledger.list({ state })) {
        const why = stuckFor(entry, now, this.deps.timings);
        if (why === undefined) continue;
        page.findings.push({
          subject: entry.key,
          act: async (dryRun) => {
            if (dryRun) return { summary: `would send again: ${why}`, planned: 1 };
            await this.deps.engine.resend(entry, why, by, this.deps.log);
            return { summary: `sent again: ${why}`, planned: 1 };
          },
        });
      }
    }
    return page;
  }

  /** Take the sweep, or say who holds it: a lease that lapsed (its run was killed) is taken over, with its place. */
  private claim(name: SweepName, holder: string, now: number): Promise<{ claimed: true; cursor: string | undefined } | { claimed: false; until: number }> {
    return this.deps.shared.update<SweepRecord, { claimed: true; cursor: string | undefined } | { claimed: false; until: number }>(keyOf(name), (current) => {
      const record = current ?? {};
      if (record.lease && record.lease.holder !== holder && record.lease.until > now)
        return { next: record, result: { claimed: false, until: record.lease.until } };
      return { next: { ...record, lease: { holder, until: now + this.deps.timings.leaseMs } }, result: { claimed: true, cursor: record.cursor } };
    });
  }

  /** Keep the run's place after a page, and its lease: false when another run has taken the sweep over. */
  private keepPlace(name: SweepName, holder: string, cursor: string): Promise<boolean> {
    const until = this.deps.now().getTime() + this.deps.timings.leaseMs;
    return this.deps.shared.update<SweepRecord, boolean>(keyOf(name), (current) => {
      if (current?.lease?.holder !== holder) return { next: current, result: false };
      return { next: { ...current, cursor, lease: { holder, until } }, result: true };
    });
  }

  /**
   * Let the sweep go with what this run did, and where the next run starts: `cursor` (none when this one got through),
   * or, with `keepPlace`, the place last kept.
   */
  private release(name: SweepName, holder: string, run: SweepRun, cursor: string | undefined, keepPlace = false): Promise<void> {
    return this.deps.shared.update<SweepRecord, void>(keyOf(name), (current) => {
      if (current?.lease?.holder !== holder) return { next: current, result: undefined };
      const { lease: _lease, cursor: kept, ...rest } = current;
      const place = keepPlace ? kept : cursor;
      // The last run as kept: its first findings only, so the record stays far inside a Table entity's 64 KiB.
      const last = { ...run, findings: run.findings.slice(0, KEPT_FINDINGS) };
      return { next: { ...rest, ...(place !== undefined && { cursor: place }), last }, result: undefined };
    });
  }

  private finish(run: SweepRun, why: string | undefined, outcome: SweepRun['outcome']): SweepRun {
    run.outcome = outcome;
    run.endedAt = this.deps.now().toISOString();
    const verb = run.dryRun ? 'would plan' : 'planned';
    run.summary =
      `sweep ${run.sweep}${run.dryRun ? ' (dry run)' : ''} ${outcome}${why ? ` (${why})` : ''}: ${run.found} found in ${run.pages} page(s)` +
      `${run.resumed ? ', resumed where the last run stopped' : ''}, ${verb} ${run.planned} action(s), ${run.passedOver} passed over`;
    this.deps.log.info({ sweep: run.sweep, dryRun: run.dryRun, outcome, found: run.found, planned: run.planned, pages: run.pages }, run.summary);
    return run;
  }
}

/** The user risk levels the policy's rules act on (rules a sweep's signals can match); high when none says. */
export function levelsActedOn(policy: CompiledPolicy): UserRiskLevel[] {
  const levels = new Set<UserRiskLevel>();
  for (const rule of policy.policy.rules) {
    if (!rule.enabled || (rule.when.source && !rule.when.source.includes('sweep'))) continue;
    for (const level of rule.when.userRisk ?? []) levels.add(level);
  }
  return levels.size > 0 ? [...levels] : ['high'];
}

const keyOf = (name: SweepName): string => `sweep:${name}`;

/** Why `entry` is stuck, or undefined if it is on its way (see stuckActionsPage). */
export function stuckFor(
  entry: LedgerEntry,
  now: number,
  timings: Pick<SweepTimings, 'plannedStuckMs' | 'queuedStuckMs' | 'runningStuckMs'>,
): string | undefined {
  const last = entry.history.at(-1);
  const since = Date.parse(last?.at ?? entry.updatedAt);
  if (entry.state === 'planned' && now - since >= timings.plannedStuckMs) return `planned since ${new Date(since).toISOString()}, never queued`;
  if (entry.state === 'queued' && now - since >= timings.queuedStuckMs) {
    // A deferral or a turn says when its message is due: until then it is waiting, not lost.
    const due = Math.max(0, ...[...(last?.note ?? '').matchAll(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g)].map((m) => Date.parse(m[0])));
    if (due + timings.queuedStuckMs <= now) return `queued since ${new Date(since).toISOString()} with nothing due`;
  }
  const lapsed = entry.lease ? Date.parse(entry.lease.until) : Number.NaN;
  if (entry.state === 'running' && now - lapsed >= timings.runningStuckMs) return `running, its lease lapsed at ${new Date(lapsed).toISOString()}`;
  return undefined;
}
