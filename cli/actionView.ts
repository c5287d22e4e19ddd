/**
 * Actions as an analyst reads them in a terminal: one line per action in a list, a timeline for one action, what a
 * request, an approval, a denial, a rollback or a replay came to, and what ended on the side. Pure: the clock is a
 * parameter. The entries come from another machine, so every text field is shown through displayText (one line,
 * nothing invisible, bounded).
 */
import { ACTIONS, isActionKind } from '../shared/actions/catalogue';
import { targetLabel, type ActionTarget } from '../shared/actions/target';
import { MAX_PAGE } from '../shared/analystRequests';
import type { DeadLetterReport } from '../shared/analysts';
import type { DeadLetterRecord, LedgerEntry } from '../shared/ledger/ledger';
import { displayText } from '../shared/limits';

/** An action as the engine answered it, when it has the fields every entry has; else undefined. */
export function actionOf(value: unknown): LedgerEntry | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const entry = value as Partial<Record<keyof LedgerEntry, unknown>>;
  const strings = [entry.key, entry.kind, entry.state].every((field) => typeof field === 'string');
  if (!strings || typeof entry.target !== 'object' || entry.target === null) return undefined;
  return {
    ...(value as LedgerEntry),
    history: Array.isArray(entry.history) ? (entry.history as LedgerEntry['history']) : [],
    attempts: Array.isArray(entry.attempts) ? (entry.attempts as LedgerEntry['attempts']) : [],
    source: typeof entry.source === 'object' && entry.source !== null ? (entry.source as LedgerEntry['source']) : ({} as LedgerEntry['source']),
  };
}

/** How long ago `iso` was, in the largest whole unit: `42s`, `5m`, `3h`, `2d`. */
export function age(iso: string | undefined, now: Date): string {
  const at = Date.parse(iso ?? '');
  if (Number.isNaN(at)) return '?';
  const seconds = Math.max(0, Math.floor((now.getTime() - at) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** A list, one line per action: `key  kind  target  state  age  reason`, the columns aligned across the list. */
export function actionLines(entries: readonly LedgerEntry[], now: Date): string[] {
  const rows = entries.map((e) => [
    field(e.key, 120),
    field(e.kind, 40),
    targetText(e.target),
    field(e.state, 30),
    `${age(e.createdAt, now)} ago`,
    field(e.reason, 80),
  ]);
  const widths = [0, 1, 2, 3, 4].map((column) => Math.max(...rows.map((row) => (row[column] as string).length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column < 5 ? cell.padEnd(widths[column] as number) : cell))
      .join('  ')
      .trimEnd(),
  );
}

/** One action, whole: what, state, why, where it came from, its history as a timeline, its attempts, its links. */
export function actionDetail(entry: LedgerEntry, now: Date): string[] {
  const names = analystNames(entry);
  const who = (by: unknown) => {
    const id = field(by, 120);
    const name = names.get(id.toLowerCase());
    return name ? `${name} (${id})` : id;
  };
  const source = entry.source;
  const lines = [
    field(entry.key, 120),
    `  what      ${what(entry)}`,
    `  state     ${field(entry.state, 30)}${entry.stateReason ? `: ${field(entry.stateReason, 300)}` : ''}`,
    `  reason    ${field(entry.reason, 300)}`,
    `  mode      ${entry.mode === 'audit' ? 'audit: recorded and followed, nothing changed' : field(entry.mode, 20)}`,
    `  source    ${field(source.type, 20)}${source.requestedBy ? `, requested by ${who(source.requestedBy)}` : ''}${source.ruleId ? `, rule ${field(source.ruleId, 64)}` : ''}`,
    ...(source.incidentArmId ? [`  incident  ${field(source.incidentArmId, 400)}`] : []),
    `  created   ${field(entry.createdAt, 40)} (${age(entry.createdAt, now)} ago); updated ${field(entry.updatedAt, 40)}`,
  ];
  const decided = entry.decidedBy;
  if (decided) {
    lines.push(`  decided   ${field(decided.verdict, 20)} by ${who(decided.by)} at ${field(decided.at, 40)}: ${field(decided.reason, 300)}`);
  }
  if (source.rollbackOf) lines.push(`  undoes    ${field(source.rollbackOf, 120)}`);
  if (entry.rolledBackBy) lines.push(`  undone by ${field(entry.rolledBackBy, 120)}`);

  lines.push('', 'History');
  for (const event of entry.history) {
    const omitted = typeof event.omitted === 'number' && event.omitted > 0 ? ` (and ${event.omitted} more events, not kept)` : '';
    lines.push(
      `  ${field(event.at, 40)}  ${field(event.state, 16).padEnd(16)}  by ${who(event.by)}${event.note ? `  ${field(event.note, 300)}` : ''}${omitted}`,
    );
  }
  lines.push('', 'Attempts');
  if (entry.attempts.length === 0) lines.push('  none');
  for (const attempt of entry.attempts) {
    const answer = attempt.status !== undefined ? `  HTTP ${field(String(attempt.status), 3)}${attempt.code ? ` ${field(attempt.code, 64)}` : ''}` : '';
    const omitted = typeof attempt.omitted === 'number' && attempt.omitted > 0 ? ` (and ${attempt.omitted} more attempts, not kept)` : '';
    lines.push(
      `  #${field(String(attempt.attempt), 6)}  ${field(attempt.at, 40)}  ${field(attempt.outcome, 20)}${answer}  ${field(attempt.detail, 300)}${omitted}`,
    );
  }
  const next = nextSteps(entry);
  if (next.length > 0) lines.push('', 'Next', ...next.map((step) => `  ${step}`));
  return lines;
}

/** What an analyst's request (act) or rollback came to, and what to run next. */
export function requestOutcome(verb: 'requested' | 'rollback requested', entry: LedgerEntry, now: Date): string[] {
  const key = field(entry.key, 120);
  const held = entry.state === 'pending-approval';
  const lines = [`${verb}: ${key} (${field(entry.state, 30)}${held && entry.stateReason ? `: ${field(entry.stateReason, 300)}` : ''})`];
  if (entry.mode === 'audit') lines.push('  audit mode: it is recorded and followed, but nothing is changed');
  lines.push(`  ${actionLines([entry], now)[0]}`);
  lines.push(held ? `  another analyst approves it: responder actions approve ${key} --reason "<why>"` : `  follow it: responder actions show ${key}`);
  return lines;
}

/** What an approval or a denial came to: `approved: queued`, `denied`. */
export function decisionOutcome(verdict: 'approved' | 'denied', entry: LedgerEntry, now: Date): string[] {
  const state = field(entry.state, 30);
  const head = verdict === 'denied' ? (state === 'denied' ? 'denied' : `denied: ${state}`) : `approved: ${state}`;
  return [head, `  ${actionLines([entry], now)[0]}`];
}

/** What a replay came to: `<key>  revokeSessions on adele.vance@contoso.com: queued (sent again)`. */
export function replayOutcome(entry: LedgerEntry): string[] {
  return [`${field(entry.key, 120)}  ${field(entry.kind, 40)} on ${targetText(entry.target)}: ${field(entry.state, 30)} (sent again)`];
}

/** The answer, when it has the lists every answer has (each action with the fields every entry has); else undefined. */
export function deadLetterAnswerOf(value: unknown): DeadLetterReport | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const answer = value as Partial<Record<keyof DeadLetterReport, unknown>>;
  if (!Array.isArray(answer.deadLetters) || !Array.isArray(answer.failedActions)) return undefined;
  if (!answer.deadLetters.every((record) => typeof record === 'object' && record !== null)) return undefined;
  const actions = answer.failedActions.map(actionOf);
  if (actions.some((action) => action === undefined)) return undefined;
  const total = (typeof answer.total === 'object' && answer.total !== null ? answer.total : {}) as Partial<DeadLetterReport['total']>;
  const count = (n: unknown, shown: number) => (typeof n === 'number' && Number.isInteger(n) && n >= shown ? n : shown);
  return {
    deadLetters: answer.deadLetters as DeadLetterRecord[],
    failedActions: actions as LedgerEntry[],
    total: { deadLetters: count(total.deadLetters, answer.deadLetters.length), failedActions: count(total.failedActions, actions.length) },
    truncated: answer.truncated === true,
  };
}

/** Who set a message aside, as `responder deadletters` says it. */
const DEAD_LETTER_SOURCES: Record<DeadLetterRecord['by'], string> = {
  worker: 'refused by the worker',
  broker: 'dead-lettered by Service Bus',
  'risk-event-hub': 'not read from the risk-event hub',
};

/** What ended on the side: the dead-letter records, then the failed or dead-lettered actions, one line each. */
export function deadLetterLines({ deadLetters, failedActions, total, truncated }: DeadLetterReport): string[] {
  const shown = (count: number, all: number) => (count < all ? `, the newest ${count} shown` : '');
  const lines = [`${total.deadLetters} dead-lettered message(s)${shown(deadLetters.length, total.deadLetters)}`];
  for (const r of deadLetters) {
    const by = Object.hasOwn(DEAD_LETTER_SOURCES, r.by) ? DEAD_LETTER_SOURCES[r.by] : field(r.by, 40);
    const action = typeof r.actionKey === 'string' ? `  names action ${field(r.actionKey, 120)}` : '';
    lines.push(`  ${field(r.at, 40)}  ${by}: ${field(r.reason, 256)} ${field(r.description, 300)}  message ${field(r.messageId, 256)}${action}`);
  }
  lines.push(
    `${total.failedActions} action(s) failed or dead-lettered${shown(failedActions.length, total.failedActions)} (replay one with: responder replay <action key> --reason "<why>")`,
  );
  for (const e of failedActions) {
    lines.push(`  ${field(e.key, 120)}  ${field(e.kind, 40)} on ${targetText(e.target)}: ${field(e.state, 30)}: ${field(e.stateReason, 300)}`);
  }
  if (truncated) {
    lines.push(
      `more: --limit <n> shows up to ${MAX_PAGE} of each; responder actions list --state failed --all (or --state dead-lettered) lists every such action`,
    );
  }
  return lines;
}

/** `isolateDevice (isolationType=Selective) on websrv1.contoso.com: isolate the device`. */
function what(entry: LedgerEntry): string {
  const params = Object.entries(entry.params ?? {}).map(([name, value]) => `${field(name, 40)}=${field(String(value), 40)}`);
  const verb = isActionKind(entry.kind) ? `: ${ACTIONS[entry.kind].verb}` : '';
  return `${field(entry.kind, 40)}${params.length ? ` (${params.join(', ')})` : ''} on ${targetText(entry.target)}${verb}`;
}

/** The commands that move this action on, by its state. */
function nextSteps(entry: LedgerEntry): string[] {
  const key = field(entry.key, 120);
  if (entry.state === 'pending-approval') {
    const requester = entry.source.requestedBy ? ' (by an analyst other than its requester)' : '';
    return [`responder actions approve ${key} --reason "<why>"${requester}`, `responder actions deny ${key} --reason "<why>"`];
  }
  if (entry.state === 'succeeded' && entry.mode !== 'audit' && isActionKind(entry.kind) && ACTIONS[entry.kind].rollback && !entry.rolledBackBy) {
    return [`responder actions rollback ${key} --reason "<why>"`];
  }
  if (entry.rolledBackBy) return [`responder actions show ${field(entry.rolledBackBy, 120)}   the rollback`];
  if (entry.state === 'failed' || entry.state === 'dead-lettered') return [`responder replay ${key} --reason "<why>"   send it again`];
  return [];
}

/** Object ids the entry names, with the names it gives them (an analyst's decision carries both). */
function analystNames(entry: LedgerEntry): Map<string, string> {
  const names = new Map<string, string>();
  const decided = entry.decidedBy;
  if (decided && typeof decided.by === 'string' && typeof decided.name === 'string' && decided.name !== decided.by) {
    names.set(decided.by.toLowerCase(), field(decided.name, 80));
  }
  return names;
}

function targetText(target: ActionTarget): string {
  return field(targetLabel(target), 120);
}

/** A remote field as one bounded line; what is not text shows as empty. */
function field(value: unknown, max: number): string {
  return typeof value === 'string' ? displayText(value, max) : '';
}
