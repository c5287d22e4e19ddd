import { approvalStep, overdue, type Analyst } from './actions/approval';
import { commandFor } from './actions/command';
import type { ReportedAction, ReportedState } from './actions/report';
import { QueueUnavailableError, rollbackHeldByAnother } from './engine';
import { InputError, RefusedError } from './errors';
import { IDEMPOTENCY_KEY_PATTERN } from './actions/idempotency';
import { attemptCount, LedgerConflictError, type ActionLedger, type DeadLetterRecord, type LedgerEntry, type LedgerFilter } from './ledger/ledger';
import type { Logger } from './log';
import type { CompiledPolicy } from './policy/decide';
import type { ActionQueue } from './queue/queue';

/** What the analysts' side uses. */
export interface AnalystDeps {
  ledger: ActionLedger;
  queue: ActionQueue;
  /** The policy in force: its approvalTtl. */
  policy: CompiledPolicy;
  now: () => Date;
  log: Logger;
  report(action: ReportedAction, state: ReportedState, detail: string, attempts: number, log: Logger): Promise<void>;
}

/** A page of the ledger, newest first, and where the next one starts. */
export interface ActionPage {
  actions: LedgerEntry[];
  next?: string;
}

/** What ended on the side, newest first: at most a page of each, and how many there are in all. */
export interface DeadLetterReport {
  /** Messages set aside (refused by the worker, dead-lettered by Service Bus, unreadable on the risk hub), by `at`. */
  deadLetters: DeadLetterRecord[];
  /** Actions that ended `failed` or `dead-lettered`, by when they ended: what `replay` sends again. */
  failedActions: LedgerEntry[];
  total: { deadLetters: number; failedActions: number };
  /** Whether either list holds fewer than its total: the records are kept without end. */
  truncated: boolean;
}

/** How many times a decision reads an entry again after another writer moved it. */
const DECIDE_TRIES = 5;

/**
 * The analysts' side of the ledger: list and read actions and what ended on the side, approve or deny the held ones. An approval sends the action
 * through the queue like any other, so the worker still resolves its target and checks protection before it runs:
 * an approval lifts a guardrail, never protection.
 */
export class AnalystActions {
  constructor(private readonly deps: AnalystDeps) {}

  /** Actions matching `filter`, newest first, `limit` at a time; `after` is the `next` of the page before. */
  async list(filter: LedgerFilter, limit: number, after?: string): Promise<ActionPage> {
    const all = (await this.deps.ledger.list(filter)).sort((a, b) => (pageCursor(a) < pageCursor(b) ? 1 : pageCursor(a) > pageCursor(b) ? -1 : 0));
    // The page starts after the cursor's place in the order, whether or not its entry still matches the filter.
    const start = after === undefined ? 0 : all.findIndex((e) => pageCursor(e) < parseCursor(after));
    if (start < 0) return { actions: [] };
    const page = await Promise.all(all.slice(start, start + limit).map((entry) => this.expireIfDue(entry)));
    const last = page.at(-1);
    return { actions: page, ...(last && start + limit < all.length && { next: pageCursor(last) }) };
  }

  /** The dead-letter records and the failed or dead-lettered actions, the newest `limit` of each. */
  async deadLetters(limit: number): Promise<DeadLetterReport> {
    const { ledger } = this.deps;
    const [records, deadLettered, failed] = await Promise.all([
      ledger.listDeadLetters(),
      ledger.list({ state: 'dead-lettered' }),
      ledger.list({ state: 'failed' }),
    ]);
    records.sort((a, b) => b.at.localeCompare(a.at));
    const actions = [...deadLettered, ...failed].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
    return {
      deadLetters: records.slice(0, limit),
      failedActions: actions.slice(0, limit),
      total: { deadLetters: records.length, failedActions: actions.length },
      truncated: records.length > limit || actions.length > limit,
    };
  }

  /** One action, whole; a held one past its approvalTtl is expired first. */
  async show(key: string): Promise<LedgerEntry> {
    return this.expireIfDue(await this.load(key));
  }

  approve(key: string, analyst: Analyst, reason: string, log: Logger = this.deps.log): Promise<LedgerEntry> {
    return this.decide(key, 'approved', analyst, reason, log);
  }

  deny(key: string, analyst: Analyst, reason: string, log: Logger = this.deps.log): Promise<LedgerEntry> {
    return this.decide(key, 'denied', analyst, reason, log);
  }

  /**
   * Load, judge (shared/actions/approval.ts), write. An approval moves the entry to `planned` with the analyst's word,
   * sends its command, then marks it queued: if the send fails the entry waits `planned`, approved, and approving
   * again sends it. ETag-guarded: of two analysts deciding at once, one wins and the other is told what happened.
   */
  private async decide(key: string, verdict: 'approved' | 'denied', analyst: Analyst, reason: string, log: Logger): Promise<LedgerEntry> {
    for (let tries = 0; tries < DECIDE_TRIES; tries++) {
      const entry = await this.load(key);
      const now = this.deps.now();
      const at = now.toISOString();
      const step = approvalStep(entry, verdict, analyst, now, this.deps.policy.policy.guardrails.approvalTtl.ms);
      try {
        switch (step.step) {
          case 'refuse':
            throw new RefusedError(step.status, step.code, step.why, entry);
          case 'expire': {
            const expired = await this.expire(entry, step.why, at, log);
            throw new RefusedError(409, 'Expired', `action ${key} ${step.why}`, expired);
          }
          case 'resend':
            return await this.send(entry, at, log);
          case 'decide': {
            const decidedBy = { verdict, by: analyst.objectId, name: analyst.name, at, reason };
            const note = `${verdict} by ${analyst.name}: ${reason}`;
            if (verdict === 'denied') {
              const denied = await this.deps.ledger.transition(key, entry.etag, 'denied', { by: analyst.objectId, at, note }, { decidedBy, stateReason: note });
              await this.deps.report(denied, 'denied', note, attemptCount(denied.attempts), log);
              log.warn({ actionId: key, by: analyst.objectId }, `denied ${entry.kind}`);
              return denied;
            }
            const held = await rollbackHeldByAnother(this.deps.ledger, entry);
            if (held) throw new RefusedError(409, held.code, held.message, entry);
            // Sent before (the worker held it after a run): its command needs a MessageId the broker has not seen.
            const sentBefore = entry.history.some((event) => event.state === 'queued');
            const replays = sentBefore ? (entry.replays ?? 0) + 1 : entry.replays;
            const approved = await this.deps.ledger.transition(
              key,
              entry.etag,
              'planned',
              { by: analyst.objectId, at, note },
              { decidedBy, ...(replays !== undefined && { replays }) },
            );
            return await this.send(approved, at, log);
          }
        }
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
      }
    }
    throw new Error(`could not decide on ${key}: it kept changing`);
  }

  /** Send an approved entry's command and mark it queued; its MessageId is new (an earlier run of it may have used one). */
  private async send(entry: LedgerEntry, at: string, log: Logger): Promise<LedgerEntry> {
    try {
      await this.deps.queue.send([commandFor(entry, at)]);
    } catch (error) {
      log.error({ err: error, actionId: entry.key }, 'approval: the queue did not take the command');
      throw new QueueUnavailableError(`the action queue did not accept ${entry.key}: approve it again`);
    }
    const queued = await this.deps.ledger.transition(entry.key, entry.etag, 'queued', { by: entry.decidedBy?.by ?? 'analyst', at }).catch(async (error) => {
      // The worker (or another approval) moved it on: it is on its way either way.
      if (error instanceof LedgerConflictError) return (await this.deps.ledger.get(entry.key)) ?? entry;
      throw error;
    });
    await this.deps.report(queued, 'approved', queued.history.at(-2)?.note ?? 'approved', attemptCount(queued.attempts), log);
    log.warn({ actionId: entry.key, by: entry.decidedBy?.by }, `approved ${entry.kind}: queued`);
    return queued;
  }

  private async expireIfDue(entry: LedgerEntry): Promise<LedgerEntry> {
    const why = overdue(entry, this.deps.now(), this.deps.policy.policy.guardrails.approvalTtl.ms);
    if (why === undefined) return entry;
    return this.expire(entry, why, this.deps.now().toISOString(), this.deps.log).catch(async (error) => {
      if (error instanceof LedgerConflictError) return this.load(entry.key);
      throw error;
    });
  }

  private async expire(entry: LedgerEntry, why: string, at: string, log: Logger): Promise<LedgerEntry> {
    const expired = await this.deps.ledger.transition(entry.key, entry.etag, 'expired', { by: 'engine', at, note: why }, { stateReason: why });
    await this.deps.report(expired, 'expired', why, attemptCount(expired.attempts), log);
    return expired;
  }

  private async load(key: string): Promise<LedgerEntry> {
    const entry = await this.deps.ledger.get(key);
    if (!entry) throw new RefusedError(404, 'NotFound', `no action ${key} in the ledger`);
    return entry;
  }
}

/** Where a page ends: the last entry's creation time and key (entries created in the same instant stay in order). */
function pageCursor(entry: LedgerEntry): string {
  return `${entry.createdAt}|${entry.key}`;
}

/** A cursor as `next` gives it, or 400: a forged one must not silently restart the listing. */
function parseCursor(after: string): string {
  const [at, key, ...rest] = after.split('|');
  if (rest.length > 0 || at === undefined || key === undefined || Number.isNaN(Date.parse(at)) || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new InputError('after', 'is not a cursor this listing gave: use the next link as it came');
  }
  return after;
}
