import { hash } from 'node:crypto';
import { InputError } from '../errors';
import { isRecord } from '../signals/fields';
import { parseIncidentArmId, type IncidentArmIdParts } from '../signals/identifiers';

/**
 * "Look at this incident again later": queued when an incident arrives with no entities even after listing them
 * through ARM (users report Sentinel filling them in 6-10 minutes after creation). It travels on the actions queue
 * next to ActionCommands; the worker tells them apart by `type`.
 */
export interface IncidentReevaluation {
  type: 'reevaluateIncident';
  incidentArmId: string;
  /** Re-evaluations already scheduled before this one: 1 for the first. */
  attempt: number;
  createdAt: string;
}

/** When to look again, after each re-evaluation that still found no entities; then the engine stops and says so. */
export const REEVALUATE_AFTER_MS = [3 * 60_000, 6 * 60_000, 10 * 60_000];

export function isReevaluation(body: unknown): body is IncidentReevaluation {
  return isRecord(body) && body.type === 'reevaluateIncident';
}

/** A re-evaluation as the worker reads it: with its incident's ARM id taken apart. */
export type ParsedReevaluation = IncidentReevaluation & { incident: IncidentArmIdParts };

export function parseReevaluation(body: unknown): ParsedReevaluation {
  if (!isRecord(body) || body.type !== 'reevaluateIncident') throw new InputError('type', 'expected "reevaluateIncident"');
  const { incidentArmId, attempt, createdAt } = body;
  const incident = typeof incidentArmId === 'string' ? parseIncidentArmId(incidentArmId) : undefined;
  if (typeof incidentArmId !== 'string' || !incident) throw new InputError('incidentArmId', 'expected an incident ARM id');
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 1 || attempt > REEVALUATE_AFTER_MS.length) {
    throw new InputError('attempt', `expected a whole number from 1 to ${REEVALUATE_AFTER_MS.length}`);
  }
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) throw new InputError('createdAt', 'expected a date-time');
  return { type: 'reevaluateIncident', incidentArmId, attempt, createdAt, incident };
}

/** One MessageId per incident and attempt: a second delivery of the same incident schedules no second copy. */
export function reevaluationMessageId(message: Pick<IncidentReevaluation, 'incidentArmId' | 'attempt'>): string {
  return `reevaluate-${hash('sha256', message.incidentArmId.toLowerCase(), 'hex').slice(0, 32)}-${message.attempt}`;
}
