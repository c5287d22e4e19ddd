import type { ActionKind, ActionParams } from '../actions/catalogue';
import type { CommandSource } from '../actions/command';
import type { ApiFailure } from '../actions/failure';
import type { ActionTarget } from '../actions/target';
import { cut, displayText, TEXT_LIMITS } from '../limits';

/**
 * The action ledger: one entry per action (per idempotency key), the single record of what the engine planned,
 * held, did and undid, and why. The port below has an in-memory twin (local host, tests) and an Azure Table storage
 * adapter (tableLedger.ts); both pass the same contract tests.
 */

export const LEDGER_STATES = [
  'planned',
  'pending-approval',
  'queued',
  'running',
  'succeeded',
  'failed',
  'dead-lettered',
  'blocked',
  'rolled-back',
  'denied',
  'expired',
  'waiting',
  'not-needed',
] as const;
export type LedgerState = (typeof LEDGER_STATES)[number];

/** Allowed transitions. Anything else is a bug or a stale writer, and is refused. */
const TRANSITIONS: Record<LedgerState, readonly LedgerState[]> = {
  // planned -> failed: its command cannot be carried by the queue at all (the engine checks before sending).
  planned: ['queued', 'pending-approval', 'blocked', 'failed'],
  // -> planned: an analyst approved it (planned until the queue has taken the command). denied, expired: final.
  'pending-approval': ['planned', 'queued', 'blocked', 'denied', 'expired'],
  // queued -> queued: the stuckActions sweep sent its command again, its message being lost.
  queued: ['running', 'blocked', 'dead-lettered', 'queued'],
  // running -> queued: a transient failure scheduled a retry copy. running -> running: a delivery took over an
  // action whose previous worker died (its lease ran out).
  // running -> pending-approval: the directory disagreed with the payload on who the target is: held for a human.
  running: ['running', 'succeeded', 'failed', 'queued', 'blocked', 'dead-lettered', 'pending-approval'],
  // -> planned: an analyst replays it (planned until the queue has taken the command, as for a new action).
  failed: ['queued', 'dead-lettered', 'planned'],
  'dead-lettered': ['queued', 'planned'],
  // succeeded -> succeeded: a rollback of it was requested (the history says by whom; rolledBackBy links it).
  succeeded: ['rolled-back', 'succeeded'],
  blocked: [],
  'rolled-back': [],
  denied: [],
  expired: [],
  // waiting: its verdict reads entity data unavailable for now. -> waiting: looked at again, still waiting. The data
  // read, the policy plans it, holds it, refuses it, or wants it no more.
  waiting: ['waiting', 'planned', 'pending-approval', 'blocked', 'not-needed'],
  // Final as far as that decision goes; a later one (the incident's next update) that wants it takes it up again.
  'not-needed': ['waiting', 'planned', 'pending-approval', 'blocked'],
};

export function canTransition(from: LedgerState, to: LedgerState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** States in which an action counts against the policy's caps: it was (or is being) sent to be executed. */
export const COUNTED_STATES: readonly LedgerState[] = ['queued', 'running', 'succeeded', 'failed', 'dead-lettered', 'rolled-back'];

export interface LedgerEvent {
  at: string;
  state: LedgerState;
  /** Who moved it: `engine`, `worker`, an analyst's object id. */
  by: string;
  note?: string;
  /** On the one event that stands for many: how many events it replaced (a long history keeps its ends). */
  omitted?: number;
}

export interface LedgerAttempt {
  attempt: number;
  at: string;
  outcome: 'succeeded' | 'audited' | 'pending' | 'held' | ApiFailure['class'];
  detail: string;
  /** The API's answer, kept for the record: HTTP status and error code. */
  status?: number;
  code?: string;
  /** On the one record that stands for many: how many attempts it replaced (a long list keeps its ends). */
  omitted?: number;
}

export interface LedgerEntry {
  key: string;
  kind: ActionKind;
  target: ActionTarget;
  params: ActionParams;
  mode: 'audit' | 'enforce';
  reason: string;
  source: CommandSource;
  state: LedgerState;
  /** Why it is in this state (the skip detail for held or blocked actions). */
  stateReason?: string;
  createdAt: string;
  updatedAt: string;
  history: LedgerEvent[];
  attempts: LedgerAttempt[];
  /** What a rollback needs (the state before the action), written by the executor. */
  rollback?: unknown;
  /** Replays an analyst asked for so far: each replay's command needs a MessageId of its own. */
  replays?: number;
  /** The analyst who approved or denied it while it was held, when and why. */
  decidedBy?: AnalystDecision;
  /** The key of the latest rollback asked for it; the rollback's source.rollbackOf links back. */
  rolledBackBy?: string;
  /** While `running`: which delivery holds it and until when; its keep-alive renews it. Gone once it leaves `running`. */
  lease?: LedgerLease;
  /** Optimistic concurrency: every write must present the ETag it read. */
  etag: string;
}

export type NewLedgerEntry = Omit<LedgerEntry, 'etag' | 'history' | 'attempts' | 'updatedAt'> & { by: string };

/** Who moves an entry, when, and why: one history event. */
export interface LedgerEventInput {
  by: string;
  note?: string;
  at: string;
}

/** A running action's claim: its holder (one delivery's claim, unique) and when it lapses unless renewed (ISO 8601). */
export interface LedgerLease {
  holder: string;
  until: string;
}

/** An analyst's word on a held action. */
export interface AnalystDecision {
  verdict: 'approved' | 'denied';
  /** The analyst's object id, and a name to show. */
  by: string;
  name: string;
  at: string;
  reason: string;
}

/**
 * What a transition may change besides the state. An action that waited for data takes, with its verdict, the
 * rule, parameters, mode and reason of the decision that gives it (`reason`, `params`, `mode`, `source`).
 */
export type LedgerPatch = Partial<
  Pick<LedgerEntry, 'attempts' | 'rollback' | 'stateReason' | 'replays' | 'decidedBy' | 'rolledBackBy' | 'lease' | 'reason' | 'params' | 'mode' | 'source'>
>;

export class LedgerConflictError extends Error {
  override readonly name = 'LedgerConflictError';
  constructor(readonly key: string) {
    super(`ledger entry ${key} changed since it was read (ETag mismatch)`);
  }
}

export class LedgerTransitionError extends Error {
  override readonly name = 'LedgerTransitionError';
  constructor(
    readonly key: string,
    readonly from: LedgerState,
    readonly to: LedgerState,
  ) {
    super(`ledger entry ${key} cannot go from ${from} to ${to}`);
  }
}

/**
 * A message that left the queue without becoming a final ledger state by the normal path: refused by the worker (its
 * schema check, or a command the ledger does not stand behind), or dead-lettered by the broker
 * (MaxDeliveryCountExceeded, expired). The ledger keeps it so that nothing disappears silently; `responder deadletters`
 * lists them and `responder replay` sends an action again.
 */
export interface DeadLetterRecord {
  /** The message's MessageId on the queue: one record per message, however often it is reported. */
  messageId: string;
  at: string;
  /**
   * `worker`: refused (`reason` says why: SchemaInvalid, NoLedgerEntry, …); `broker`: found in the dead-letter queue by the reconciler; `risk-event-hub`: an
   * ID Protection event, or one of its records, that could not be read (Event Hubs keeps no dead letters of its own).
   */
  by: 'worker' | 'broker' | 'risk-event-hub';
  reason: string;
  description: string;
  /** Deliveries before it was dead-lettered, when known (DeadLetteredMessage.deliveryCount). */
  deliveryCount?: number;
  /** The body as received, as JSON text, cut at TEXT_LIMITS.deadLetterBody characters. */
  body: string;
  /** The action key the message names, when it names one; the ledger may hold no such action (a forged command). */
  actionKey?: string;
  incidentArmId?: string;
}

/**
 * A dead-letter record as every adapter stores it: whatever the broker or the message said, bounded to fit a Table
 * storage entity (a string property holds 32,768 UTF-16 code units; the body is cut well below that, marked).
 */
export function boundedDeadLetter(record: DeadLetterRecord): DeadLetterRecord {
  return {
    ...record,
    messageId: cut(record.messageId, TEXT_LIMITS.name),
    reason: cut(record.reason, TEXT_LIMITS.name),
    description: cut(record.description, TEXT_LIMITS.note),
    body: cut(record.body, TEXT_LIMITS.deadLetterBody),
    ...(record.incidentArmId !== undefined && { incidentArmId: cut(record.incidentArmId, TEXT_LIMITS.resource) }),
  };
}

/**
 * What the engine last decided on a subject (an incident, a change of a user's risk), kept for every submission,
 * whether it planned anything or not: so that the missedIncidents sweep can tell an incident the engine never saw from
 * one it saw and left alone (no route shows them yet). One record per subject, rewritten by each decision.
 */
export interface DecisionRecord {
  /** The signal's subject: an incident's ARM id (lower case), `risk:…`, a sweep's. */
  subject: string;
  at: string;
  /** Who submitted it: `relay` and the like, a sweep, an analyst's object id. */
  by: string;
  /** The decision's one line. */
  summary: string;
  /** Actions it planned or left waiting for data (those it held for an analyst are not counted). */
  actions: number;
  /** The digest of the policy that decided. */
  policy: string;
}

/** A decision record as every adapter stores it: bounded to fit a Table storage entity. */
export function boundedDecision(record: DecisionRecord): DecisionRecord {
  return {
    ...record,
    subject: cut(record.subject, TEXT_LIMITS.resource),
    by: cut(record.by, TEXT_LIMITS.name),
    summary: cut(record.summary, TEXT_LIMITS.note),
  };
}

/** What a decision record is found by: its subject, bounded as stored, in any case. */
export function decisionKey(subject: string): string {
  return cut(subject, TEXT_LIMITS.resource).toLowerCase();
}

export interface ActionLedger {
  /** Insert if absent: the atomic gate that makes concurrent deliveries of one incident plan each action once. */
  create(entry: NewLedgerEntry): Promise<{ created: boolean; entry: LedgerEntry }>;
  get(key: string): Promise<LedgerEntry | undefined>;
  /** Move an entry to `to`, if the transition is allowed and `etag` is still current. */
  transition(key: string, etag: string, to: LedgerState, event: LedgerEventInput, patch?: LedgerPatch): Promise<LedgerEntry>;
  /**
   * Extend a running entry's lease, if `etag` is still current (else LedgerConflictError); resolves with the new ETag.
   * Not a transition: no history event, `updatedAt` unchanged, so a long execution's renewals do not fill its history.
   */
  renewLease(key: string, etag: string, lease: LedgerLease): Promise<string>;
  /** Entries matching every given field, oldest first: by incident (subject), by target, by state. */
  list(filter?: LedgerFilter): Promise<LedgerEntry[]>;
  /** Entries of `kind` created at or after `since` and in a counted state: what a cap has already spent. */
  countSince(kind: ActionKind, since: string): Promise<number>;
  /** Keep a dead-lettered message; a second report of the same MessageId changes nothing (returns false). */
  recordDeadLetter(record: DeadLetterRecord): Promise<boolean>;
  listDeadLetters(): Promise<DeadLetterRecord[]>;
  /** Keep what the engine decided on a subject, over what it decided before. */
  recordDecision(record: DecisionRecord): Promise<void>;
  /** The last decision on `subject` (any case), if there was one. */
  decisionOn(subject: string): Promise<DecisionRecord | undefined>;
  /** Decisions made at or after `since` (ISO 8601), oldest first. */
  listDecisions(since: string): Promise<DecisionRecord[]>;
}

export interface LedgerFilter {
  /** The incident's ARM id, or the sweep or request the action came from. */
  subject?: string;
  /** Any identifier of the target (object id, UPN, machine id, Entra device id, FQDN, host name), any case. */
  target?: string;
  state?: LedgerState;
  kind?: ActionKind;
  /** An incident's ARM id (any case): its own actions, and analysts' requests and rollbacks made for it. */
  incident?: string;
  /** Created at or after this instant (ISO 8601). */
  since?: string;
}

/** The identifiers a target can be found by, lower-cased. */
export function targetKeys(target: ActionTarget): string[] {
  const values = target.type === 'user' ? [target.id, target.upn] : [target.id, target.aadDeviceId, target.fqdn, target.hostName];
  return values.filter((v): v is string => Boolean(v)).map((v) => v.toLowerCase());
}

export function matchesFilter(entry: LedgerEntry, filter: LedgerFilter): boolean {
  return (
    (filter.subject === undefined || entry.source.subject === filter.subject) &&
    (filter.state === undefined || entry.state === filter.state) &&
    (filter.kind === undefined || entry.kind === filter.kind) &&
    (filter.incident === undefined ||
      entry.source.subject === filter.incident.toLowerCase() ||
      entry.source.incidentArmId?.toLowerCase() === filter.incident.toLowerCase()) &&
    (filter.since === undefined || entry.createdAt >= filter.since) &&
    (filter.target === undefined || targetKeys(entry.target).includes(filter.target.toLowerCase()))
  );
}

/** A new entry as every adapter stores it: its first history event says who created it in which state. */
export function firstEntry(input: NewLedgerEntry): Omit<LedgerEntry, 'etag'> {
  const { by, ...fields } = input;
  const stateReason = input.stateReason === undefined ? undefined : cut(input.stateReason, TEXT_LIMITS.note);
  return {
    ...fields,
    reason: cut(input.reason, TEXT_LIMITS.reason),
    ...(stateReason !== undefined && { stateReason }),
    updatedAt: input.createdAt,
    history: [{ at: input.createdAt, state: input.state, by: logNote(by), ...(stateReason && { note: logNote(stateReason) }) }],
    attempts: [],
  };
}

/**
 * How much history and how many attempts an entry keeps: the first few and the latest, with one record standing for
 * those between, within `json` characters each. An action followed for days (a device offline with its isolation
 * pending) or deferred for hours would otherwise outgrow a Table storage string property (shared/limits.ts), and
 * then no write could record how it ended.
 */
export const LEDGER_LOG_LIMITS = { keep: 40, first: 5, json: 24_000 } as const;

/** `log` with its middle replaced by one record (made by `standIn` from the replaced ones) once over the limits. */
function boundedLog<T extends { omitted?: number }>(log: T[], standIn: (replaced: T[], count: number) => T): T[] {
  const { keep, first, json } = LEDGER_LOG_LIMITS;
  if (log.length <= keep && JSON.stringify(log).length <= json) return log;
  for (let latest = Math.min(keep - first - 1, log.length - first - 1); ; latest--) {
    const replaced = log.slice(first, log.length - latest);
    const count = replaced.reduce((n, item) => n + (item.omitted ?? 1), 0);
    const kept = [...log.slice(0, first), standIn(replaced, count), ...log.slice(log.length - latest)];
    if (latest <= 1 || JSON.stringify(kept).length <= json) return kept;
  }
}

/** A note in a history event or an attempt: one line of at most TEXT_LIMITS.logNote characters. */
const logNote = (text: string): string => displayText(text, TEXT_LIMITS.logNote);

const boundedHistory = (history: LedgerEvent[]): LedgerEvent[] =>
  boundedLog(history, (replaced, count) => {
    const last = replaced[replaced.length - 1] as LedgerEvent;
    return { at: last.at, state: last.state, by: 'ledger', note: `${count} events in between omitted; the last of them is shown`, omitted: count };
  });

const boundedAttempts = (attempts: LedgerAttempt[]): LedgerAttempt[] =>
  boundedLog(attempts, (replaced, count) => ({
    ...(replaced[replaced.length - 1] as LedgerAttempt),
    detail: logNote(`${count} attempts and follow-ups in between omitted; the last of them: ${(replaced[replaced.length - 1] as LedgerAttempt).detail}`),
    omitted: count,
  }));

/** How many attempts and follow-ups an entry records, counting those a long list stands for. */
export function attemptCount(attempts: readonly LedgerAttempt[]): number {
  return attempts.reduce((n, attempt) => n + (attempt.omitted ?? 1), 0);
}

/**
 * The entry after a transition, for every adapter: refused unless `etag` is the one stored (someone wrote since it
 * was read) and the state machine allows the move. The adapter then writes it, guarded by the same ETag.
 */
export function nextEntry(
  current: LedgerEntry | undefined,
  key: string,
  etag: string,
  to: LedgerState,
  event: LedgerEventInput,
  patch: LedgerPatch,
): Omit<LedgerEntry, 'etag'> {
  if (!current || current.etag !== etag) throw new LedgerConflictError(key);
  if (!canTransition(current.state, to)) throw new LedgerTransitionError(key, current.state, to);
  // A lease belongs to one stay in `running`: whatever comes next (a takeover included) brings its own or none.
  const { etag: _read, lease: _lease, ...rest } = current;
  const note = event.note && logNote(event.note);
  return {
    ...rest,
    ...patch,
    ...(patch.stateReason !== undefined && { stateReason: cut(patch.stateReason, TEXT_LIMITS.note) }),
    ...(patch.reason !== undefined && { reason: cut(patch.reason, TEXT_LIMITS.reason) }),
    ...(patch.decidedBy !== undefined && {
      decidedBy: { ...patch.decidedBy, name: cut(patch.decidedBy.name, TEXT_LIMITS.name), reason: cut(patch.decidedBy.reason, TEXT_LIMITS.reason) },
    }),
    ...(patch.attempts !== undefined && {
      attempts: boundedAttempts(patch.attempts.map((a) => ({ ...a, detail: logNote(a.detail), ...(a.code !== undefined && { code: cut(a.code, 64) }) }))),
    }),
    state: to,
    updatedAt: event.at,
    history: boundedHistory([...current.history, { at: event.at, state: to, by: logNote(event.by), ...(note && { note }) }]),
  };
}

/** The entry after a lease renewal, for the adapters that write whole entries: refused unless `etag` is current. */
export function renewedEntry(current: LedgerEntry | undefined, key: string, etag: string, lease: LedgerLease): Omit<LedgerEntry, 'etag'> {
  if (!current || current.etag !== etag) throw new LedgerConflictError(key);
  if (current.state !== 'running') throw new LedgerTransitionError(key, current.state, 'running');
  const { etag: _read, ...rest } = current;
  return { ...rest, lease };
}
