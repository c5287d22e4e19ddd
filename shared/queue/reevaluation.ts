import { hash } from 'node:crypto';
import { InputError } from '../errors';
import { isRecord } from '../signals/fields';
import { parseIncidentArmId, type IncidentArmIdParts } from '../signals/identifiers';
import type { RiskRef } from '../signals/signal';

/**
 * "Look at this incident again later": queued when an incident arrives with no entities even after listing them
 * through ARM (users report Sentinel filling them in 6-10 minutes after creation), or when its decision waits for
 * entity data enrichment could not read for now (a spent budget, a 429, a 5xx). It travels on the actions queue next
 * to ActionCommands; the worker tells them apart by `type`.
 */
export interface IncidentReevaluation {
  type: 'reevaluateIncident';
  incidentArmId: string;
  /** Why: no entities yet (also when absent: messages queued before there were reasons), or actions waiting for data. */
  reason?: ReevaluationReason;
  /** Re-evaluations for this reason already scheduled before this one: 1 for the first. */
  attempt: number;
  /**
   * For `waitingForData`: a digest of what waits (rule, action, target), part of the MessageId. A later delivery of the
   * incident that waits for other targets schedules a look of its own instead of being taken for a duplicate.
   */
  waitingFor?: string;
  createdAt: string;
}

/**
 * "Look at this risk again later": its decision waits for data enrichment could not read for now. A risk record has no
 * incident to read again, so the record travels with the look (the signal's RiskRef), and the look reads it again.
 */
export interface RiskReevaluation {
  type: 'reevaluateRisk';
  /** The signal's subject: the record read again must give it, or the look is refused. */
  subject: string;
  /** How the record came: the event stream (risk) or the riskyUsers sweep (sweep). */
  source: 'risk' | 'sweep';
  record: RiskRef;
  reason: 'waitingForData';
  attempt: number;
  waitingFor: string;
  createdAt: string;
}

export const REEVALUATION_REASONS = ['noEntities', 'waitingForData'] as const;
export type ReevaluationReason = (typeof REEVALUATION_REASONS)[number];

/** Which look at an incident a submission is: none (the relay's), or a re-evaluation for a reason. */
export interface Reevaluation {
  reason: ReevaluationReason;
  attempt: number;
  /** The look's own `waitingFor`: the looks it schedules carry it on, so a chain's MessageIds are its own. */
  waitingFor?: string;
}

/**
 * When to look again, per reason. No entities: after 3, 6, then 10 minutes (Sentinel adds them minutes late), then the
 * engine stops and says so. Waiting for data: soon and then backing off, about 8.5 minutes in all — a spent per-minute
 * budget or a throttled API recovers within that, and a containment should not wait longer for it — then what still
 * waits is held for a human.
 */
export const REEVALUATE_AFTER_MS: Record<ReevaluationReason, readonly number[]> = {
  noEntities: [3 * 60_000, 6 * 60_000, 10 * 60_000],
  waitingForData: [30_000, 60_000, 2 * 60_000, 5 * 60_000],
};

/** A wait the data names itself (a budget's refill, a Retry-After) is honoured up to this, never past it. */
export const WAIT_FOR_DATA_MAX_MS = 15 * 60_000;

/** The looks' schedule by name (RESPONDER_TIME_SCALE compresses it). */
export interface ReevaluationTimings {
  afterMs: Record<ReevaluationReason, readonly number[]>;
  waitForDataMaxMs: number;
}

export const REEVALUATION_TIMINGS: ReevaluationTimings = { afterMs: REEVALUATE_AFTER_MS, waitForDataMaxMs: WAIT_FOR_DATA_MAX_MS };

/** When the look after `done` looks for `reason` should come, or undefined when they are spent. */
export function nextLookAfterMs(reason: ReevaluationReason, done: number, retryAfterMs = 0, timings = REEVALUATION_TIMINGS): number | undefined {
  const step = timings.afterMs[reason][done];
  if (step === undefined) return undefined;
  // Looking before the budget refills would only meet it spent again; an hour-long budget must not hold containment.
  return reason === 'waitingForData' ? Math.min(Math.max(step, retryAfterMs), timings.waitForDataMaxMs) : step;
}

/** The digest of what waits, for `waitingFor`: the same waiting actions, the same digest. */
export function waitingDigest(keys: readonly string[]): string {
  return hash('sha256', [...keys].sort().join('\n'), 'hex').slice(0, 16);
}

export function isReevaluation(body: unknown): body is IncidentReevaluation | RiskReevaluation {
  return isRecord(body) && (body.type === 'reevaluateIncident' || body.type === 'reevaluateRisk');
}

/** A re-evaluation as the worker reads it: with its reason and its incident's ARM id taken apart. */
export type ParsedReevaluation = IncidentReevaluation & { reason: ReevaluationReason; incident: IncidentArmIdParts };

/** A risk's look as the worker reads it: its record, as read when it was decided, to be read again. */
export function parseRiskReevaluation(body: unknown): RiskReevaluation {
  if (!isRecord(body) || body.type !== 'reevaluateRisk') throw new InputError('type', 'expected "reevaluateRisk"');
  const { subject, source, record, attempt, waitingFor, createdAt } = body;
  if (typeof subject !== 'string' || !subject.startsWith('risk:') || subject.length > 512) throw new InputError('subject', 'expected a risk subject');
  if (source !== 'risk' && source !== 'sweep') throw new InputError('source', 'expected risk or sweep');
  if (!isRecord(record) || (record.category !== 'RiskyUsers' && record.category !== 'UserRiskEvents') || !isRecord(record.properties))
    throw new InputError('record', 'expected a RiskyUsers or UserRiskEvents record');
  if (body.reason !== 'waitingForData') throw new InputError('reason', 'expected waitingForData');
  return {
    type: 'reevaluateRisk',
    subject,
    source,
    record: record as unknown as RiskRef,
    reason: 'waitingForData',
    attempt: attemptOf(attempt, REEVALUATE_AFTER_MS.waitingForData.length),
    waitingFor: waitingForOf(waitingFor),
    createdAt: createdAtOf(createdAt),
  };
}

/** A look's number: a whole number from 1 to the looks its reason has. */
function attemptOf(attempt: unknown, looks: number): number {
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 1 || attempt > looks)
    throw new InputError('attempt', `expected a whole number from 1 to ${looks}`);
  return attempt;
}

/** What a look waits for, as waitingDigest writes it. */
function waitingForOf(waitingFor: unknown): string {
  if (typeof waitingFor !== 'string' || !/^[0-9a-f]{16}$/.test(waitingFor)) throw new InputError('waitingFor', 'expected 16 hexadecimal characters');
  return waitingFor;
}

function createdAtOf(createdAt: unknown): string {
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) throw new InputError('createdAt', 'expected a date-time');
  return createdAt;
}

export function parseReevaluation(body: unknown): ParsedReevaluation {
  if (!isRecord(body) || body.type !== 'reevaluateIncident') throw new InputError('type', 'expected "reevaluateIncident"');
  const { incidentArmId, attempt, createdAt, waitingFor } = body;
  const incident = typeof incidentArmId === 'string' ? parseIncidentArmId(incidentArmId) : undefined;
  if (typeof incidentArmId !== 'string' || !incident) throw new InputError('incidentArmId', 'expected an incident ARM id');
  const reason = body.reason ?? 'noEntities';
  if (!REEVALUATION_REASONS.some((known) => known === reason)) throw new InputError('reason', `expected one of ${REEVALUATION_REASONS.join(', ')}`);
  return {
    type: 'reevaluateIncident',
    incidentArmId,
    reason: reason as ReevaluationReason,
    attempt: attemptOf(attempt, REEVALUATE_AFTER_MS[reason as ReevaluationReason].length),
    ...(waitingFor !== undefined && { waitingFor: waitingForOf(waitingFor) }),
    createdAt: createdAtOf(createdAt),
    incident,
  };
}

/**
 * One MessageId per incident, reason and attempt (and, waiting for data, what waits): a second delivery of the same
 * incident schedules no second copy.
 */
export function reevaluationMessageId(message: IncidentReevaluation | RiskReevaluation): string {
  if (message.type === 'reevaluateRisk') {
    const subject = hash('sha256', message.subject.toLowerCase(), 'hex').slice(0, 32);
    return `reevaluate-risk-${subject}-data${message.attempt}-${message.waitingFor}`;
  }
  const incident = hash('sha256', message.incidentArmId.toLowerCase(), 'hex').slice(0, 32);
  if (message.reason === 'waitingForData') return `reevaluate-${incident}-data${message.attempt}-${message.waitingFor ?? ''}`;
  return `reevaluate-${incident}-${message.attempt}`;
}
