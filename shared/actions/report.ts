import { commentIdFor, type SentinelIncidents } from '../clients/sentinel';
import { displayText } from '../limits';
import type { Logger } from '../log';
import type { WaitingAction } from '../policy/decision';
import { lackedData } from '../policy/unavailable';
import { parseIncidentArmId } from '../signals/identifiers';
import { ACTIONS, type ActionKind } from './catalogue';
import type { ActionCommand } from './command';
import { targetLabel, type ActionTarget } from './target';

export type ReportedState = 'succeeded' | 'audited' | 'failed' | 'blocked' | 'held' | 'approved' | 'denied' | 'expired' | 'rolled-back';

/** The label an outcome puts on its incident, so analysts can filter: what was contained, rehearsed, or needs them. */
export const OUTCOME_LABELS: Record<ReportedState, string> = {
  succeeded: 'responder-contained',
  audited: 'responder-audit',
  failed: 'responder-needs-attention',
  blocked: 'responder-needs-attention',
  held: 'responder-needs-attention',
  approved: 'responder-approved',
  denied: 'responder-denied',
  expired: 'responder-needs-attention',
  'rolled-back': 'responder-rolled-back',
};

const HEADLINES: Record<ReportedState, string> = {
  succeeded: 'done',
  audited: 'audit only: nothing was changed',
  failed: 'FAILED: needs an analyst',
  blocked: 'BLOCKED: needs an analyst',
  held: 'HELD: needs an analyst',
  approved: 'approved: on its way',
  denied: 'DENIED by an analyst: nothing was done',
  expired: 'EXPIRED: no analyst decided in time; nothing was done',
  'rolled-back': "ROLLED BACK: undone on an analyst's request",
};

/** What a report says of an action: the fields an ActionCommand and a ledger entry share. */
export type ReportedAction = Pick<ActionCommand, 'kind' | 'target' | 'reason' | 'mode' | 'source'> & { key: string };

/** A command as a report names it: by its key. */
export const reportedCommand = (command: ActionCommand): ReportedAction => ({ ...command, key: command.idempotencyKey });

/**
 * The incident comment for an action's outcome: what, on whom, the result, why, and the key to find it by. Sentinel
 * renders comments as HTML and Markdown, and names and API answers come from what happens on endpoints, so every value
 * is shown as inert text: one line, HTML escaped, links defanged. Only the engine's own words start a line. Each value
 * is cut, so a comment stays far below Sentinel's 30,000 characters (incident-navigate-triage.md, "Supported input").
 */
export function outcomeComment(action: ReportedAction, state: ReportedState, detail: string, attempts: number): string {
  return [
    `Sentinel Responder — ${action.kind} on ${inert(targetLabel(action.target), 400)}: ${HEADLINES[state]}`,
    `Result: ${inert(detail, 1500)}`,
    `Why: ${inert(action.reason, 1500)}`,
    `Action: ${ACTIONS[action.kind].verb}; mode ${action.mode}; attempts ${attempts}; key ${action.key}`,
    ...(state === 'held'
      ? [`To decide (role Responder.Approve): responder actions approve ${action.key} --reason "…" (or deny), or POST /api/actions/${action.key}/approve`]
      : []),
  ].join('\n');
}

/**
 * Outside text made inert for a comment: on one line, `<`, `>` and `&` escaped so no tag is rendered, Markdown's marks
 * escaped so none strikes out or restyles the engine's words, and URLs broken (`hxxps[:]//`, `www[.]`) so none is
 * clickable. Cut to `max` characters first.
 */
export function inert(text: string, max: number): string {
  return displayText(text, max)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_~[\]|#]/g, '\\$&')
    .replace(/\bhttp(s?):\/\//gi, 'hxxp$1[:]//')
    .replace(/:\/\//g, '[:]//')
    .replace(/\bwww\./gi, 'www[.]');
}

/**
 * Tell the incident: one comment per action, its id derived from the action's key (a retry rewrites it, never adds a
 * second), and a label per outcome. Best effort: the outcome is already in the ledger, so a Sentinel failure is
 * logged, not retried at the action's expense.
 */
export async function reportOutcome(
  incidents: () => Promise<SentinelIncidents>,
  action: ReportedAction,
  state: ReportedState,
  detail: string,
  attempts: number,
  log: Logger,
): Promise<void> {
  await tellIncident(
    incidents,
    action.source.incidentArmId,
    commentIdFor(action.key),
    outcomeComment(action, state, detail, attempts),
    OUTCOME_LABELS[state],
    log,
  );
}

/** What an action that waited for data became, as the incident's waiting comment lists it. */
export interface WaitedAction {
  kind: ActionKind;
  target: ActionTarget;
  state: string;
  why?: string;
}

/** At most this many actions are listed in a waiting comment: a 200-device incident's comment stays readable. */
const WAITING_LISTED = 20;

/**
 * The incident's comment about its actions that wait for entity data (a spent budget, a throttled API): which, for
 * what, and when the engine looks again; or, once nothing waits, what each became. One per incident, rewritten at each
 * look; outside values inert, as in every comment.
 */
export function waitingComment(
  look: { evaluation: number; of: number; nextAt?: string },
  waiting: readonly WaitingAction[],
  waited: readonly WaitedAction[],
): string {
  const listed = <T>(items: readonly T[], line: (item: T) => string): string[] => [
    ...items.slice(0, WAITING_LISTED).map(line),
    ...(items.length > WAITING_LISTED ? [`- and ${items.length - WAITING_LISTED} more: GET /api/actions?incident=… lists them all`] : []),
  ];
  if (waiting.length > 0)
    return [
      `Sentinel Responder — WAITING for data: ${waiting.length} action(s) not decided yet`,
      `Evaluated again at ${look.nextAt ?? 'the next look'} (look ${look.evaluation + 1} of ${look.of + 1}); what still waits after the last look is held for an analyst.`,
      ...listed(
        waiting,
        (w) => `- ${w.kind} on ${inert(targetLabel(w.target), 400)} (rule ${w.ruleId}): ${lackedData(w)} unavailable for now: ${inert(w.why, 600)}`,
      ),
    ].join('\n');
  return [
    `Sentinel Responder — waited for data: nothing waits any more (look ${look.evaluation} of ${look.of + 1})`,
    ...listed(waited, (w) => `- ${w.kind} on ${inert(targetLabel(w.target), 400)}: ${w.state}${w.why ? `: ${inert(w.why, 600)}` : ''}`),
  ].join('\n');
}

/** Rewrite the incident's waiting comment (best effort, like every report). */
export async function reportWaiting(incidents: () => Promise<SentinelIncidents>, incidentArmId: string, comment: string, log: Logger): Promise<void> {
  await tellIncident(incidents, incidentArmId, commentIdFor(`${incidentArmId.toLowerCase()}#waiting-for-data`), comment, undefined, log);
}

/**
 * Tell the incident what a sweep found about it, once per finding: the comment's id is derived from the finding's
 * subject, so a second run or a second finding of the same thing rewrites it, never adds another (best effort).
 */
export async function reportFinding(
  incidents: () => Promise<SentinelIncidents>,
  incidentArmId: string | undefined,
  subject: string,
  comment: string,
  log: Logger,
): Promise<void> {
  await tellIncident(incidents, incidentArmId, commentIdFor(subject), comment, OUTCOME_LABELS.held, log);
}

async function tellIncident(
  incidents: () => Promise<SentinelIncidents>,
  incidentArmId: string | undefined,
  commentId: string,
  comment: string,
  label: string | undefined,
  log: Logger,
): Promise<void> {
  const incident = incidentArmId ? parseIncidentArmId(incidentArmId) : undefined;
  if (!incident) return;
  try {
    const sentinel = await incidents();
    await sentinel.comment(incident, commentId, comment);
    if (label) await sentinel.label(incident, label);
  } catch (error) {
    log.warn({ err: error, incidentId: incidentArmId }, 'could not comment on the incident; the outcome is in the ledger');
  }
}
