import type { LedgerAttempt, LedgerEntry, LedgerLease, LedgerPatch, LedgerState } from '../ledger/ledger';
import type { ActionCommand } from './command';
import type { ExecutionOutcome } from './executor';
import type { PacedFailure } from './failure';
import type { ReportedState } from './report';
import { retryDelayMs, RETRY_POLICY, type RetryPolicy } from './retryPolicy';

/**
 * The rules of an action's life once it is on the queue, as pure functions: given the ledger entry, what just happened
 * and the time, each says the entry's next state, what is written with it, and what goes back on the queue. The worker
 * (shared/worker.ts) loads, asks one of these, writes and sends; nothing here reads a clock or does I/O.
 */

/**
 * What the worker made of one message, as its log and the tests see it. `poison`: not a message it can read;
 * `refused`: a readable command the ledger does not stand behind.
 */
export type WorkerResult = 'succeeded' | 'audited' | 'pending' | 'held' | 'retrying' | 'deferred' | 'failed' | 'blocked' | 'duplicate' | 'poison' | 'refused';

/**
 * How long a claim (`running`) lasts unless its keep-alive renews it: Service Bus's default lock duration, since a
 * crashed instance's message comes back only when its lock lapses anyway, so a lease as long costs no extra wait.
 */
export const RUNNING_LEASE_MS = 60_000;
/** Renewals per lease: one every third of it, so two in a row may fail or be slow before the claim lapses. */
export const RENEWALS_PER_LEASE = 3;
/** How long a keep-alive may keep one claim: host.json's functionTimeout, after which the host has given up on the execution. */
export const MAX_HOLD_MS = 5 * 60_000;
/** A delivery that finds the action running elsewhere looks again this long after that claim's lease ends. */
export const TAKEOVER_MARGIN_MS = 1000;
/** A delivery that finds its device busy with another action looks again after this long (plus spread). */
export const DEVICE_BUSY_WAIT_MS = 5000;
/** A deferral is spread over up to this much more than its wait, so a deferred burst does not return at once. */
export const DEFERRAL_SPREAD_MAX_MS = 30_000;
/** When the pacer names no wait for a spent budget. */
export const PACED_DEFAULT_WAIT_MS = 1000;
/**
 * How long before its turn at a spent budget an action comes back: time for its reads, which wait up to 5 s each to go
 * together with others' (shared/clients/batchedDevices.ts), so that its write goes out as the turn's unit frees.
 */
export const TURN_LEAD_MS = 10_000;

/**
 * The timings the rules use, by name: settings may change some (RESPONDER_FOLLOW_UP_SECONDS, RESPONDER_RETRY_BASE_SECONDS,
 * RESPONDER_RUNNING_LEASE_SECONDS) and RESPONDER_TIME_SCALE compresses them all.
 */
export interface LifecycleTimings {
  retry: RetryPolicy;
  /** Overrides the executor's follow-up wait for a pending machine action. */
  followUpMs?: number;
  leaseMs: number;
  maxHoldMs: number;
  takeoverMarginMs: number;
  deviceBusyWaitMs: number;
  deferralSpreadMaxMs: number;
  pacedDefaultWaitMs: number;
  turnLeadMs: number;
}

export const LIFECYCLE_TIMINGS: LifecycleTimings = {
  retry: RETRY_POLICY,
  leaseMs: RUNNING_LEASE_MS,
  maxHoldMs: MAX_HOLD_MS,
  takeoverMarginMs: TAKEOVER_MARGIN_MS,
  deviceBusyWaitMs: DEVICE_BUSY_WAIT_MS,
  deferralSpreadMaxMs: DEFERRAL_SPREAD_MAX_MS,
  pacedDefaultWaitMs: PACED_DEFAULT_WAIT_MS,
  turnLeadMs: TURN_LEAD_MS,
};

/** The entry moves to `to`, with the event's note and the fields written with it. */
export interface LedgerWrite {
  to: LedgerState;
  note: string;
  patch?: LedgerPatch;
}

/** A message to put on the queue for delivery at `at`. */
export interface Scheduled {
  command: ActionCommand;
  at: Date;
}

/** What the worker does after an execution, in this order: write the ledger, schedule, report on the incident. */
export interface Step {
  write: LedgerWrite;
  schedule?: Scheduled;
  /** Set when the incident hears of it: a final state, or held for a human. */
  report?: ReportedState;
  result: WorkerResult;
  detail: string;
  /** A rollback that succeeded: the key of the action it undid, which becomes `rolled-back`. */
  undid?: string;
}

/** An entry this delivery has claimed: the only kind an execution's outcome is recorded on. */
export type RunningEntry = LedgerEntry & { state: 'running' };

export function isRunning(entry: LedgerEntry): entry is RunningEntry {
  return entry.state === 'running';
}

/** What a delivery does with the entry it names: make it its own, look again later, or leave it (it is done). */
export type Claim =
  | { claim: 'move'; to: 'queued'; note: string }
  | { claim: 'move'; to: 'running'; note: string; lease: LedgerLease }
  | { claim: 'wait'; until: Date }
  | { claim: 'done'; detail: string };

/**
 * Whether this delivery may run the action now. A `planned` entry whose message was delivered is on the queue by
 * definition (the submitter had not marked it yet): it moves to `queued`, then is claimed. A `running` one belongs to
 * another delivery until its lease ends; after that, that delivery's process died or stalled, and this one takes over.
 * `holder` names this delivery's claim (in the lease and the ledger's history); it must be unique to the claim.
 */
export function claimStep(entry: LedgerEntry, now: Date, timings: Pick<LifecycleTimings, 'leaseMs' | 'takeoverMarginMs'>, holder: string): Claim {
  const { leaseMs } = timings;
  const lease = { holder, until: new Date(now.getTime() + leaseMs).toISOString() };
  switch (entry.state) {
    case 'planned':
      return { claim: 'move', to: 'queued', note: 'delivered before the submitter marked it queued' };
    case 'queued':
      return { claim: 'move', to: 'running', note: holder, lease };
    case 'running': {
      const leaseEnds = leaseEndOf(entry, leaseMs);
      if (now.getTime() < leaseEnds) return { claim: 'wait', until: new Date(leaseEnds + timings.takeoverMarginMs) };
      return { claim: 'move', to: 'running', note: `taken over: lease expired (${holder})`, lease };
    }
    default:
      return { claim: 'done', detail: `already ${entry.state}` };
  }
}

/** When a running entry's claim lapses (epoch ms): its lease, or for an entry claimed without one, `leaseMs` after the claim. */
function leaseEndOf(entry: LedgerEntry, leaseMs: number): number {
  return entry.lease ? Date.parse(entry.lease.until) : Date.parse(entry.updatedAt) + leaseMs;
}

/** What a keep-alive tick does: renew the claim with this lease, or stop renewing it, and why. */
export type Renewal = { renew: true; lease: LedgerLease } | { renew: false; why: string };

/** How often a claim's keep-alive renews it. */
export function renewalIntervalMs(leaseMs: number): number {
  return leaseMs / RENEWALS_PER_LEASE;
}

/**
 * A keep-alive tick at `now` for a claim taken at `claimedAt`: renew it for another lease, until the claim is older than
 * `maxHoldMs` (the Functions host stopped waiting for the execution: a redelivery takes over once the lease lapses).
 */
export function renewal(holder: string, claimedAt: Date, now: Date, timings: Pick<LifecycleTimings, 'leaseMs' | 'maxHoldMs'>): Renewal {
  const { leaseMs } = timings;
  if (now.getTime() - claimedAt.getTime() >= timings.maxHoldMs)
    return { renew: false, why: `held for ${seconds(now.getTime() - claimedAt.getTime())} s, longer than an execution may run: no longer renewed` };
  return { renew: true, lease: { holder, until: new Date(now.getTime() + leaseMs).toISOString() } };
}

/** Whether `holder` still holds the entry, as read after a write of its own was refused (the ETag had changed). */
export type Holding = { held: true; entry: RunningEntry } | { held: false; detail: string };

/**
 * After a conflict, read again: still `running` under this holder's lease means the write that changed the ETag was its
 * own (a renewal whose answer was lost), so it goes on with the entry as read; anything else means another delivery took
 * over (this one stalled past its lease), or the action ended another way. Then this delivery records nothing.
 */
export function holding(current: LedgerEntry | undefined, holder: string): Holding {
  if (!current) return { held: false, detail: 'the entry is gone' };
  if (!isRunning(current)) return { held: false, detail: `the action is ${current.state} since` };
  if (current.lease?.holder !== holder) return { held: false, detail: `taken over by ${current.lease?.holder ?? 'another delivery'}` };
  return { held: true, entry: current };
}

/**
 * The entry's next state after its executor answered, and what follows:
 * - succeeded or audited: `succeeded`, with what a rollback needs;
 * - held: `pending-approval`, for a human;
 * - pending (a machine action still running): `queued`, and the same command again after the follow-up wait;
 * - paced (the engine's own budget): a deferral, spending no attempt;
 * - transient: `queued` and another attempt after the backoff, until the attempts run out, then `failed`;
 * - blocked, permanent: final, with the reason.
 * `jitter` (0 ≤ jitter < 1) spreads retries and deferrals; the caller draws it.
 */
export function afterExecution(
  entry: RunningEntry,
  command: ActionCommand,
  outcome: ExecutionOutcome,
  at: { started: string; now: Date },
  timings: LifecycleTimings,
  jitter: number,
): Step {
  if (outcome.outcome === 'failed' && outcome.class === 'paced') {
    // Unspread: spread, it would come back after the turns behind it.
    if (outcome.turn) return deferral({ ...command, turn: outcome.turn }, at.now, turnWaitMs(outcome.retryAfterMs, timings), outcome.detail, 0, timings);
    return deferral(withoutTurn(command), at.now, outcome.retryAfterMs ?? timings.pacedDefaultWaitMs, outcome.detail, jitter, timings);
  }
  // A turn serves the one execution it was given for: what follows it (follow-up, retry) waits for its own.
  command = withoutTurn(command);
  const attempts = [...entry.attempts, attemptOf(command, outcome, at.started)];
  const { detail } = outcome;
  switch (outcome.outcome) {
    case 'held':
      return { write: { to: 'pending-approval', note: detail, patch: { attempts, stateReason: detail } }, report: 'held', result: 'held', detail };
    case 'succeeded':
    case 'audited': {
      const rollback = outcome.outcome === 'succeeded' && outcome.rollback !== undefined ? { rollback: outcome.rollback } : {};
      const undid = outcome.outcome === 'succeeded' && command.source.rollbackOf !== undefined ? { undid: command.source.rollbackOf } : {};
      return { write: { to: 'succeeded', note: detail, patch: { attempts, ...rollback } }, report: outcome.outcome, result: outcome.outcome, detail, ...undid };
    }
    case 'pending': {
      const waitMs = timings.followUpMs ?? outcome.followUpAfterMs;
      return {
        write: { to: 'queued', note: `${detail}; follow-up in ${seconds(waitMs)} s`, patch: { attempts } },
        schedule: { command: { ...command, followUp: (command.followUp ?? 0) + 1 }, at: after(at.now, waitMs) },
        result: 'pending',
        detail,
      };
    }
    case 'failed': {
      const next = command.attempt + 1;
      if (outcome.class === 'transient' && next < timings.retry.maxAttempts) {
        const delay = retryDelayMs(command.attempt, outcome.retryAfterMs, () => jitter, timings.retry);
        // A retry is a new attempt: it carries neither the follow-up count nor the deferrals of this one.
        const { followUp: _followUp, deferral: _deferral, ...retry } = command;
        return {
          write: { to: 'queued', note: `${detail}; attempt ${next + 1} in ${seconds(delay)} s`, patch: { attempts } },
          schedule: { command: { ...retry, attempt: next }, at: after(at.now, delay) },
          result: 'retrying',
          detail,
        };
      }
      const state = outcome.class === 'blocked' ? 'blocked' : 'failed';
      const why = outcome.class === 'transient' ? `gave up after ${next} attempts: ${detail}` : detail;
      return { write: { to: state, note: why, patch: { attempts, stateReason: why } }, report: state, result: state, detail };
    }
  }
}

/**
 * How long an action given a turn at a spent budget waits to be delivered, its turn `untilTurnMs` away (on the pacer's
 * clock): until a lead ahead of it, for its reads; not at all if that is past.
 */
export function turnWaitMs(untilTurnMs: number, timings: Pick<LifecycleTimings, 'turnLeadMs'>): number {
  return Math.max(0, untilTurnMs - timings.turnLeadMs);
}

/**
 * The same attempt again later, spending no attempt: its API budget is spent (the pacer said for how long) or its
 * device is busy with another action. A deferral has a MessageId of its own (its count is part of it).
 */
export function deferral(
  command: ActionCommand,
  now: Date,
  waitMs: number,
  why: string,
  jitter: number,
  timings: Pick<LifecycleTimings, 'deferralSpreadMaxMs'>,
): Step {
  const at = after(now, waitMs + Math.min(waitMs, timings.deferralSpreadMaxMs) * jitter);
  const detail = `${why}; deferred to ${at.toISOString()}`;
  return { write: { to: 'queued', note: detail }, schedule: deferred(command, at), result: 'deferred', detail };
}

/** The command scheduled again unchanged but for its deferral count (so its MessageId is new). */
export function deferred(command: ActionCommand, at: Date): Scheduled {
  return { command: { ...command, deferral: (command.deferral ?? 0) + 1 }, at };
}

/** Who holds a device, until when (epoch ms): a lease, so a worker that dies mid-way frees the device when it ends. */
export interface DeviceLease {
  holder: string;
  until: number;
}

/** Take the device for `holder` unless another holder's lease is still running; `busy` is that holder's lease. */
export function takeDevice(held: DeviceLease | undefined, holder: string, now: number, leaseMs: number): { next: DeviceLease; busy?: DeviceLease } {
  if (held && held.holder !== holder && held.until > now) return { next: held, busy: held };
  return { next: { holder, until: now + leaseMs } };
}

/** Free the device if `holder` still holds it (a lease taken over since is the new holder's). */
export function releaseDevice(held: DeviceLease | undefined, holder: string): DeviceLease | undefined {
  return held?.holder === holder ? undefined : held;
}

/**
 * Where an action named by a dead-lettered message goes: `dead-lettered` from `queued` or `running`, through `queued`
 * from `planned` (the ledger has no shorter way); nothing once it reached a final state another way.
 */
export function deadLetterStep(state: LedgerState): 'queued' | 'dead-lettered' | undefined {
  if (state === 'planned') return 'queued';
  if (state === 'queued' || state === 'running') return 'dead-lettered';
  return undefined;
}

/** The attempt's record: its outcome (a failure by its class) and the API's answer. */
function attemptOf(command: ActionCommand, outcome: Exclude<ExecutionOutcome, PacedFailure>, at: string): LedgerAttempt {
  if (outcome.outcome !== 'failed') return { attempt: command.attempt, at, outcome: outcome.outcome, detail: outcome.detail };
  return {
    attempt: command.attempt,
    at,
    outcome: outcome.class,
    detail: outcome.detail,
    ...(outcome.status !== undefined && { status: outcome.status }),
    ...(outcome.code !== undefined && { code: outcome.code }),
  };
}

const after = (now: Date, ms: number): Date => new Date(now.getTime() + ms);

function withoutTurn(command: ActionCommand): ActionCommand {
  if (command.turn === undefined) return command;
  const { turn: _turn, ...rest } = command;
  return rest;
}
const seconds = (ms: number): number => Math.round(ms / 1000);
