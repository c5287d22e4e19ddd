import { ACTIONS } from './catalogue';
import type { ActionCommand } from './command';
import { targetLabel } from './target';

export type ReportedState = 'succeeded' | 'audited' | 'failed' | 'blocked';

/** The label an outcome puts on its incident, so analysts can filter: what was contained, rehearsed, or needs them. */
export const OUTCOME_LABELS: Record<ReportedState, string> = {
  succeeded: 'responder-contained',
  audited: 'responder-audit',
  failed: 'responder-needs-attention',
  blocked: 'responder-needs-attention',
};

/** The incident comment for an action's outcome: what, on whom, the result, why, and the key to find it by. */
export function outcomeComment(command: ActionCommand, state: ReportedState, detail: string, attempts: number): string {
  const headline = {
    succeeded: 'done',
    audited: 'audit only: nothing was changed',
    failed: 'FAILED: needs an analyst',
    blocked: 'BLOCKED: needs an analyst',
  }[state];
  return [
    `Sentinel Responder — ${command.kind} on ${targetLabel(command.target)}: ${headline}`,
    `Result: ${detail}`,
    `Why: ${command.reason}`,
    `Action: ${ACTIONS[command.kind].verb}; mode ${command.mode}; attempts ${attempts}; key ${command.idempotencyKey}`,
  ]
    .join('\n')
    .slice(0, 4000);
}
