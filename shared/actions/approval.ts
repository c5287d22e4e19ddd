import type { LedgerEntry } from '../ledger/ledger';

/** Who is deciding: the token's object id, a name to show, and whether it is a person or an app. */
export interface Analyst {
  objectId: string;
  name: string;
}

/** What an analyst's approve or deny of an entry comes to, now. */
export type ApprovalStep =
  | { step: 'decide' }
  /** Approved before, but the queue had not taken it: send it again (same message, so the broker drops a copy). */
  | { step: 'resend' }
  /** Held longer than the policy's approvalTtl: it ends `expired`, and nothing is done. */
  | { step: 'expire'; why: string }
  | { step: 'refuse'; status: 403 | 409; code: string; why: string };

/** When the entry began to wait for an analyst: its latest move to `pending-approval`. */
export function heldSince(entry: LedgerEntry): string {
  for (let i = entry.history.length - 1; i >= 0; i--) if (entry.history[i]?.state === 'pending-approval') return (entry.history[i] as { at: string }).at;
  return entry.createdAt;
}

/** Why a held action has waited past the policy's approvalTtl (it expires), or undefined while it may still be decided. */
export function overdue(entry: LedgerEntry, now: Date, ttlMs: number): string | undefined {
  if (entry.state !== 'pending-approval') return undefined;
  const since = heldSince(entry);
  return now.getTime() - Date.parse(since) > ttlMs ? `held since ${since}, longer than the policy's approvalTtl: expired` : undefined;
}

/**
 * The rules of an analyst's word on a held action, as a pure function:
 * - only a `pending-approval` action can be approved or denied (an approved one the queue did not take is sent again);
 * - one held longer than the policy's approvalTtl expires instead;
 * - four eyes: whoever requested an action cannot approve it; an action automation held may be approved by anyone with
 *   the role. Denying one's own request is withdrawing it, and allowed.
 */
export function approvalStep(entry: LedgerEntry, verdict: 'approved' | 'denied', analyst: Analyst, now: Date, ttlMs: number): ApprovalStep {
  if (entry.state === 'planned' && entry.decidedBy?.verdict === 'approved' && verdict === 'approved') return { step: 'resend' };
  if (entry.state !== 'pending-approval') {
    return {
      step: 'refuse',
      status: 409,
      code: 'NotPendingApproval',
      why: `action ${entry.key} is ${entry.state}: only a pending-approval action can be ${verdict}`,
    };
  }
  const expired = overdue(entry, now, ttlMs);
  if (expired !== undefined) return { step: 'expire', why: expired };
  const requester = entry.source.requestedBy;
  if (verdict === 'approved' && requester !== undefined && requester.toLowerCase() === analyst.objectId.toLowerCase()) {
    return { step: 'refuse', status: 403, code: 'FourEyes', why: `${analyst.name} requested this action: another analyst must approve it` };
  }
  return { step: 'decide' };
}
