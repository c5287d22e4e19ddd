import { z } from 'zod';
import { InputError } from '../errors';
import { TEXT_LIMITS } from '../limits';
import { SIGNAL_SOURCES } from '../signals/signal';
import { ACTION_KINDS, ISOLATION_TYPES, type ActionKind, type ActionParams } from './catalogue';
import { IDEMPOTENCY_KEY_PATTERN } from './idempotency';
import { PACED_APIS, type Turn } from '../coordination/pacer';
import type { LedgerEntry } from '../ledger/ledger';
import type { ActionTarget } from './target';

/**
 * What travels on the queue: one action to take. `idempotencyKey` (= `id`) is the ledger key and the base of the
 * Service Bus MessageId; `attempt` counts deliveries the engine scheduled itself (retry copies get derived ids).
 */
export interface ActionCommand {
  id: string;
  kind: ActionKind;
  target: ActionTarget;
  params: ActionParams;
  reason: string;
  mode: 'audit' | 'enforce';
  source: CommandSource;
  idempotencyKey: string;
  attempt: number;
  /** Follow-ups of a pending action (a Defender machine action still running) within this attempt. */
  followUp?: number;
  /** Deferrals within this attempt: the API budget was spent, or another action on the device was in flight. */
  deferral?: number;
  /** Replays an analyst asked for after the action failed or was dead-lettered; attempts count afresh. */
  replay?: number;
  /** The turn the pacer gave this action when its API budget was spent: it was deferred to then and spends on it. */
  turn?: Turn;
  createdAt: string;
}

export interface CommandSource {
  type: (typeof SIGNAL_SOURCES)[number];
  /** What the action is about (incident ARM id lower-cased, alert id, request id). */
  subject: string;
  incidentArmId?: string;
  ruleId?: string;
  /** Object id (or name) of the analyst or app that asked, for manual requests and approvals. */
  requestedBy?: string;
  /** For a rollback: the key of the action it undoes (its snapshot says what to restore). */
  rollbackOf?: string;
}

/** Replays of one action a command can carry: its MessageId must stay within Service Bus's 128 characters. */
export const MAX_REPLAYS = 1000;

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const target = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('user'),
    id: z.string().regex(guid).optional(),
    upn: z.string().max(TEXT_LIMITS.upn).optional(),
    accountName: z.string().max(TEXT_LIMITS.upn).optional(),
    sid: z.string().max(TEXT_LIMITS.name).optional(),
    displayName: z.string().max(TEXT_LIMITS.name).optional(),
  }),
  z.strictObject({
    type: z.literal('device'),
    id: z
      .string()
      .regex(/^[0-9a-f]{40}$/i)
      .optional(),
    aadDeviceId: z.string().regex(guid).optional(),
    fqdn: z.string().max(TEXT_LIMITS.hostName).optional(),
    hostName: z.string().max(TEXT_LIMITS.hostName).optional(),
    netBiosName: z.string().max(TEXT_LIMITS.name).optional(),
  }),
]);

const commandSchema = z.strictObject({
  id: z.string().regex(IDEMPOTENCY_KEY_PATTERN, 'expected an idempotency key'),
  kind: z.enum(ACTION_KINDS),
  target,
  params: z.strictObject({ isolationType: z.enum(ISOLATION_TYPES).optional() }),
  reason: z.string().max(TEXT_LIMITS.reason),
  mode: z.enum(['audit', 'enforce']),
  source: z.strictObject({
    type: z.enum(SIGNAL_SOURCES),
    subject: z.string().min(1).max(1024),
    incidentArmId: z.string().max(1024).optional(),
    ruleId: z.string().max(64).optional(),
    requestedBy: z.string().max(320).optional(),
    rollbackOf: z.string().regex(IDEMPOTENCY_KEY_PATTERN, 'expected an idempotency key').optional(),
  }),
  idempotencyKey: z.string().regex(IDEMPOTENCY_KEY_PATTERN, 'expected an idempotency key'),
  attempt: z.number().int().min(0).max(1000),
  followUp: z.number().int().min(1).max(10_000).optional(),
  deferral: z.number().int().min(1).max(100_000).optional(),
  replay: z.number().int().min(1).max(MAX_REPLAYS).optional(),
  turn: z
    .strictObject({
      api: z.enum(PACED_APIS),
      at: z.number().int().min(0).max(8.64e15),
      units: z.number().int().min(1).max(1000),
    })
    .optional(),
  createdAt: z.iso.datetime(),
});

/** Validate a message body from the queue. A message that fails is poison: dead-letter it, never retry it. */
export function parseActionCommand(body: unknown): ActionCommand {
  const result = commandSchema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new InputError(issue ? issue.path.join('.') : '', issue?.message ?? 'invalid action command');
  }
  if (result.data.id !== result.data.idempotencyKey) throw new InputError('id', 'must equal idempotencyKey');
  return result.data as ActionCommand;
}

/** Why the queue's schema would refuse a command, or undefined when it would carry it. */
export function unqueueable(command: ActionCommand): string | undefined {
  try {
    parseActionCommand(command);
    return undefined;
  } catch (error) {
    if (error instanceof InputError) return error.message;
    throw error;
  }
}

/**
 * The Service Bus MessageId of a command: the key itself for the first send, a derived id for every later copy —
 * replay, retry attempt, follow-up, deferral — so no two copies of an action ever share one (reusing an id would make
 * duplicate detection drop the copy silently; reference/servicebus.md).
 */
export function messageIdOf(command: Pick<ActionCommand, 'idempotencyKey' | 'attempt' | 'followUp' | 'deferral' | 'replay'>): string {
  let id = command.idempotencyKey;
  if (command.replay) id += `:r${command.replay}`;
  if (command.attempt) id += `:a${command.attempt}`;
  if (command.followUp) id += `:f${command.followUp}`;
  if (command.deferral) id += `:d${command.deferral}`;
  return id;
}

/**
 * The first command of a ledger entry's latest send: attempt 0, and the entry's replay count, so every sender of a
 * planned entry (the engine, a retried request, an approval) uses one MessageId and the broker drops the copies.
 */
export function commandFor(entry: LedgerEntry, at: string): ActionCommand {
  return {
    ...(entry.replays ? { replay: entry.replays } : {}),
    id: entry.key,
    kind: entry.kind,
    target: entry.target,
    params: entry.params,
    reason: entry.reason,
    mode: entry.mode,
    source: entry.source,
    idempotencyKey: entry.key,
    attempt: 0,
    createdAt: at,
  };
}

/** What a command does, as against where it is in the action's life: the fields a message must carry as its entry records them. */
const WHAT_IT_DOES = ['kind', 'target', 'params', 'mode', 'source'] as const;

/** What a delivered command comes to, against the ledger's entry for its key: the entry's action to carry out, or a refusal. */
export type LedgerVerdict = { carry: ActionCommand; entry: LedgerEntry } | { refuse: 'NoLedgerEntry' | 'LedgerMismatch'; why: string };

/**
 * Whether a delivered command carries an action of the engine's. The entry is the engine's record; the message only
 * carries it, and anyone allowed to send to the queue may have written it. So a command the ledger does not hold is
 * refused (the engine records every action before it sends its command), and so is one that disagrees with its entry
 * on what it does; otherwise what is carried out is the entry's kind, target, parameters, mode, reason and source, with
 * the message's place in the action's life (attempt, follow-up, deferral, replay, turn).
 */
export function againstLedger(message: ActionCommand, entry: LedgerEntry | undefined): LedgerVerdict {
  const key = message.idempotencyKey;
  if (!entry) return { refuse: 'NoLedgerEntry', why: `no ledger entry ${key}: the engine records every action before it sends its command` };
  const differs = WHAT_IT_DOES.filter((field) => !sameData(message[field], entry[field]));
  if (differs.length > 0)
    return { refuse: 'LedgerMismatch', why: `the message disagrees with ledger entry ${key} on its ${differs.join(', ')}: the entry is the engine's record` };
  const { kind, target, params, mode, reason, source } = entry;
  return { carry: { ...message, kind, target, params, mode, reason, source }, entry };
}

/** Equal as JSON data: a property set to undefined is one left out (JSON, and so the ledger's Table storage, drops it). */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return [...new Set([...Object.keys(x), ...Object.keys(y)])].every((key) => sameData(x[key], y[key]));
}
