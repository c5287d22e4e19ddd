import { againstLedger, parseActionCommand, type ActionCommand } from './actions/command';
import { deadLetterStep } from './actions/lifecycle';
import type { ReportedAction, ReportedState } from './actions/report';
import { LedgerConflictError, type ActionLedger, type LedgerEntry } from './ledger/ledger';
import type { Logger } from './log';
import type { ActionQueue } from './queue/queue';
import { bodyText } from './json';
import { isReevaluation, type IncidentReevaluation, type RiskReevaluation } from './queue/reevaluation';

/** What the reconciler uses. */
export interface DeadLetterDeps {
  ledger: ActionLedger;
  queue: ActionQueue;
  now: () => Date;
  log: Logger;
  report(action: ReportedAction, state: ReportedState, detail: string, attempts: number, log: Logger): Promise<void>;
}

/** How many times marking an entry reads it again after another writer moved it. */
const MARK_TRIES = 5;

/**
 * The dead-letter reconciler (a timer in Azure): every message Service Bus dead-lettered becomes a ledger record, its
 * action (if it is one) is marked `dead-lettered` and reported on its incident, and only then is the message removed
 * from the dead-letter queue. Running twice, or on two instances, records each message once.
 */
export class DeadLetterReconciler {
  constructor(private readonly deps: DeadLetterDeps) {}

  async reconcile(max = 100, log: Logger = this.deps.log): Promise<{ received: number; recorded: number; actions: number }> {
    let recorded = 0;
    let actions = 0;
    let failures = 0;
    const letters = await this.deps.queue.receiveDeadLetters(max);
    for (const letter of letters) {
      // One letter that cannot be recorded (storage down) stays on the dead-letter queue for the next run, and says
      // so; it does not stop the others from being recorded.
      try {
        const at = this.deps.now().toISOString();
        const why = `dead-lettered by Service Bus: ${letter.reason}${letter.description ? ` (${letter.description})` : ''}`;
        const command = actionIn(letter.body);
        const entry = command && (await this.deps.ledger.get(command.idempotencyKey));
        const ended = command && this.carried(command, entry, log) ? await markDeadLettered(this.deps.ledger, command.idempotencyKey, why, at) : undefined;
        if (command && ended) {
          actions++;
          await this.deps.report(ended, 'failed', why, command.attempt + 1, log);
        }
        // A look for data that will not come: what waited for it goes to a human instead of waiting for ever.
        const look = isReevaluation(letter.body) && letter.body.reason === 'waitingForData' ? lookedAt(letter.body) : undefined;
        if (look) {
          const held = await holdWaiting(this.deps.ledger, look, `held for a human: the look for its data was ${why}`, at, 'reconciler');
          for (const entry of held) await this.deps.report(entry, 'held', entry.stateReason ?? why, 0, log);
          actions += held.length;
        }
        const created = await this.deps.ledger.recordDeadLetter({
          messageId: letter.messageId,
          at,
          by: 'broker',
          reason: letter.reason,
          description: letter.description,
          ...(letter.deliveryCount !== undefined && { deliveryCount: letter.deliveryCount }),
          body: bodyText(letter.body),
          ...(command && { actionKey: command.idempotencyKey }),
          // The incident the ledger says the action is for, as the worker's records name it: never the body's claim.
          ...(entry?.source.incidentArmId && { incidentArmId: entry.source.incidentArmId }),
        });
        if (created) recorded++;
        log.warn({ messageId: letter.messageId, reason: letter.reason, actionId: command?.id }, why);
        await letter.settle();
      } catch (error) {
        failures++;
        log.error({ err: error, messageId: letter.messageId }, 'could not record a dead-lettered message: it stays on the dead-letter queue for the next run');
      }
    }
    if (failures > 0) throw new Error(`${failures} of ${letters.length} dead-lettered message(s) could not be recorded; they stay on the dead-letter queue`);
    return { received: letters.length, recorded, actions };
  }

  /**
   * Whether the command carried the action the ledger holds under its key, as recorded. Only such an action is ended: a
   * command the ledger does not hold was never the engine's (it records every action before sending it), and an entry
   * made for it would count against the caps and could be replayed; one that disagrees with its entry would let any
   * sender cancel that action by naming its key.
   */
  private carried(command: ActionCommand, recorded: LedgerEntry | undefined, log: Logger): boolean {
    const verdict = againstLedger(command, recorded);
    if ('carry' in verdict) return true;
    log.warn({ actionId: command.idempotencyKey, reason: verdict.refuse }, `a dead-lettered command ends no action: ${verdict.why}`);
    return false;
  }
}

/** The action a dead-lettered body carries, or undefined for a re-evaluation or garbage (the record alone keeps those). */
function actionIn(body: unknown): ActionCommand | undefined {
  try {
    return parseActionCommand(body);
  } catch {
    return undefined;
  }
}

/**
 * Move the action to `dead-lettered` unless it already reached a final state, and return it then. One the ledger does
 * not hold is left alone: nothing the engine sent lacks an entry.
 */
export async function markDeadLettered(ledger: ActionLedger, key: string, why: string, at: string): Promise<LedgerEntry | undefined> {
  const event = { by: 'reconciler', at, note: why };
  for (let tries = 0; tries < MARK_TRIES; tries++) {
    const entry = await ledger.get(key);
    if (!entry) return undefined;
    const to = deadLetterStep(entry.state);
    if (!to) return undefined;
    try {
      const moved = await ledger.transition(entry.key, entry.etag, to, event, to === 'dead-lettered' ? { stateReason: why } : undefined);
      if (moved.state === 'dead-lettered') return moved;
    } catch (error) {
      if (!(error instanceof LedgerConflictError)) throw error;
    }
  }
  throw new Error(`could not mark ${key} dead-lettered: it kept changing`);
}

/** What a look was for: an incident (its ARM id), or a risk record (its subject). */
export type WaitingOf = { incident: string } | { subject: string };

/** What a dead-lettered look was for, if its body says (the broker keeps bodies as sent: they may be anything). */
function lookedAt(body: IncidentReevaluation | RiskReevaluation): WaitingOf | undefined {
  if (body.type === 'reevaluateRisk') return typeof body.subject === 'string' ? { subject: body.subject } : undefined;
  return typeof body.incidentArmId === 'string' ? { incident: body.incidentArmId } : undefined;
}

/**
 * Hold for a human the actions that wait for data on an incident or a risk record: what a look that cannot happen (its
 * message dead-lettered, the incident no longer readable) leaves them. Returns those it held; one another writer moved
 * on meanwhile is theirs.
 */
export async function holdWaiting(ledger: ActionLedger, of: WaitingOf, why: string, at: string, by: string): Promise<LedgerEntry[]> {
  const held: LedgerEntry[] = [];
  for (const waiting of await ledger.list({ ...of, state: 'waiting' })) {
    let entry = waiting;
    for (let tries = 0; tries < MARK_TRIES && entry.state === 'waiting'; tries++) {
      try {
        entry = await ledger.transition(entry.key, entry.etag, 'pending-approval', { by, at, note: why }, { stateReason: why });
        held.push(entry);
      } catch (error) {
        if (!(error instanceof LedgerConflictError)) throw error;
        entry = (await ledger.get(entry.key)) ?? entry;
      }
    }
  }
  return held;
}
