import { ApiError } from '../clients/apiError';
import { EnginePaced, type PacedApi, type Turn } from '../coordination/pacer';

/** How a failure is handled: retried with backoff, given up, refused for a human, or (paced) deferred unattempted. */
export type FailureClass = ClassifiedFailure['class'];

/** A failure the API answered, or that reached no answer: `status` and `code` are the API's, kept for the ledger. */
export interface ApiFailure {
  class: 'transient' | 'permanent' | 'blocked';
  /** Wait at least this long before retrying (transient only): the API's Retry-After or a known floor. */
  retryAfterMs?: number;
  status?: number;
  code?: string;
  detail: string;
}

/** No API was asked: the engine held the call back to stay within a budget, which frees up after `retryAfterMs`. */
export interface PacedFailure {
  class: 'paced';
  /** The API whose budget is spent. */
  api: PacedApi;
  retryAfterMs: number;
  /** The turn the pacer gave the action: it is deferred to exactly then, and spends on it. */
  turn?: Turn;
  detail: string;
}

export type ClassifiedFailure = ApiFailure | PacedFailure;

/** PIM refuses to remove an assignment within about five minutes of its activation (reference/graph.md). */
const ACTIVE_DURATION_FLOOR_MS = 5 * 60_000;

/**
 * The one failure classifier every executor uses (reference/servicebus.md, "Classify every failure"):
 * - transient: no answer, time-outs, 429 (with its Retry-After), 408, 5xx, PIM's ActiveDurationTooShort,
 *   PendingRoleAssignmentRequest and ResourceIsLocked;
 * - blocked: 403 — for Graph writes on a user this is the privileged-target refusal (an app cannot disable an
 *   admin), or a missing permission; neither gets better by retrying, both need a human;
 * - permanent: every other 4xx (validation, not found).
 * - paced: the engine's own pacer held the call back (EnginePaced): nothing reached the API.
 * The API's status and code are kept for the ledger.
 */
export function classifyFailure(error: unknown): ClassifiedFailure {
  if (error instanceof EnginePaced)
    return { class: 'paced', api: error.api, retryAfterMs: error.retryAfterMs, ...(error.turn && { turn: error.turn }), detail: error.message };
  if (!(error instanceof ApiError)) {
    return { class: 'transient', detail: `no answer: ${(error as Error)?.message ?? String(error)}` };
  }
  const base = { status: error.status, ...(error.code !== undefined && { code: error.code }) };
  const said = `${error.api} ${error.status || 'no answer'}${error.code ? ` ${error.code}` : ''}: ${error.message}`;
  if (error.status === 0 || error.status === 408 || error.status === 429 || error.status >= 500) {
    return { class: 'transient', ...base, ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }), detail: said };
  }
  if (error.code === 'ActiveDurationTooShort') return { class: 'transient', ...base, retryAfterMs: ACTIVE_DURATION_FLOOR_MS, detail: said };
  // PIM: another request for this assignment is being processed, or the resource is briefly locked: both pass.
  if (error.code === 'PendingRoleAssignmentRequest' || error.code === 'ResourceIsLocked') return { class: 'transient', ...base, detail: said };
  if (error.status === 403) return { class: 'blocked', ...base, detail: said };
  return { class: 'permanent', ...base, detail: said };
}
