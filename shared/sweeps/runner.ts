import { randomUUID } from 'node:crypto';
import { classifyFailure } from '../actions/failure';
import { cut, displayText } from '../limits';
import { SWEEP_NAMES, SWEEPS, type SweepName } from './catalogue';
import { readOnce, type SweepContext, type SweepDeps } from './sweep';

/**
 * Scheduled remediation sweeps: what the event-driven paths missed, found by reading the source of truth again. Each
 * run is single across instances (a lease in the shared records), resumable (its place is kept after every page, and
 * a run killed halfway is resumed from there once its lease lapses), bounded in time (a run that takes too long stops
 * after a page and the next goes on), idempotent (what it submits is keyed like the events it stands in for, so the
 * ledger drops what was already decided), and can be tried without effect (a dry run plans, records nothing, keeps no
 * place and takes no lease). What each sweep looks for is in its own file (catalogue.ts lists them).
 */
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
  /** The last runs, newest first, without their findings: what GET /api/sweeps shows a human. */
  recent?: SweepRunSummary[];
}

/** A run as the sweep's record keeps it among the recent ones. */
export type SweepRunSummary = Omit<SweepRun, 'findings'>;

/** Runs a sweep's record keeps, each summary cut: the record is one Table property, at most 32K characters. */
const KEPT_RUNS = 10;
const KEPT_SUMMARY = 600;
/** The record's JSON at most: a Table string property holds 32,768 UTF-16 code units; the rest is room for a lease. */
const KEPT_JSON = 30_000;

/** Where a sweep stands: whether a run holds it now, whether the next goes on from a place, what the last runs did. */
export interface SweepStatus {
  sweep: SweepName;
  /** Until when a run holds it (ISO 8601), if one does. */
  heldUntil?: string;
  /** Whether the next run goes on from where the last stopped. */
  resumes: boolean;
  last?: SweepRun;
  recent: SweepRunSummary[];
}

export class Sweeps {
  constructor(private readonly deps: SweepDeps) {}

  /** What the sweep's last run did, if any has run. */
  async last(name: SweepName): Promise<SweepRun | undefined> {
    return (await this.record(name))?.last;
  }

  /** Where each sweep stands (GET /api/sweeps, `responder sweeps`). */
  async status(): Promise<SweepStatus[]> {
    const now = this.deps.now().getTime();
    return Promise.all(
      SWEEP_NAMES.map(async (sweep) => {
        const record = await this.record(sweep);
        const held = record?.lease && record.lease.until > now ? new Date(record.lease.until).toISOString() : undefined;
        return {
          sweep,
          ...(held !== undefined && { heldUntil: held }),
          resumes: record?.cursor !== undefined,
          ...(record?.last && { last: record.last }),
          recent: record?.recent ?? [],
        };
      }),
    );
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
      if (!dryRun) await this.release(name, holder, this.finish(run, `failed: ${displayText(String(error), 200)}`, 'failed'), undefined, keepPlace);
      throw error;
    }
  }

  private async pages(run: SweepRun, holder: string, from: string | undefined, by: string, budgetMs: number): Promise<SweepRun> {
    const { now } = this.deps;
    const { sweep: name, dryRun } = run;
    const started = new Date(run.startedAt);
    const context: SweepContext = { ...this.deps, by, startedAt: started, once: readOnce() };
    let cursor = from;
    let why: string | undefined;
    const followed = new Set(from === undefined ? [] : [from]);
    for (;;) {
      // A dry run is a what-if: its reads must not spend the budget containment needs, as a plan's do not.
      const read = () => SWEEPS[name].page(context, cursor);
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

  /** The sweep's record as it stands (a change that leaves it as read writes nothing). */
  private record(name: SweepName): Promise<SweepRecord | undefined> {
    return this.deps.shared.update<SweepRecord, SweepRecord | undefined>(keyOf(name), (r) => ({ next: r, result: r }));
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
      const last = {
        ...run,
        summary: cut(run.summary, KEPT_SUMMARY),
        findings: run.findings.slice(0, KEPT_FINDINGS).map((f) => ({ ...f, summary: cut(f.summary, KEPT_SUMMARY) })),
      };
      const { findings: _findings, ...summary } = last;
      const recent = [summary, ...(rest.recent ?? [])].slice(0, KEPT_RUNS);
      const next = { ...rest, ...(place !== undefined && { cursor: place }), last, recent };
      // Escaping swells cut text (a quote to 2 characters, a lone surrogate to 6): the last run's findings (outside text;
      // its counts stay), then older runs, give way.
      while (JSON.stringify(next).length > KEPT_JSON && last.findings.length > 0) last.findings.pop();
      while (JSON.stringify(next).length > KEPT_JSON && recent.length > 1) recent.pop();
      return { next, result: undefined };
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

const keyOf = (name: SweepName): string => `sweep:${name}`;
