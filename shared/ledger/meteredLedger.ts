import type { Metrics } from '../metrics';
import type { ActionLedger, LedgerEntry, LedgerState } from './ledger';

/**
 * The ledger with its moves counted: every action's state change passes through `create` and `transition`, whoever
 * makes it (the engine, the worker, an analyst, a sweep, the dead-letter reconciler), so the counts are whole without
 * a line in each of them. Recorded after the write succeeds, synchronously: nothing is awaited for a metric.
 */
export function meteredLedger(ledger: ActionLedger, metrics: Metrics, now: () => Date): ActionLedger {
  return {
    create: async (input) => {
      const created = await ledger.create(input);
      if (created.created) moved(metrics, created.entry, 'new', now);
      return created;
    },
    transition: async (key, etag, to, event, patch) => {
      const entry = await ledger.transition(key, etag, to, event, patch);
      // The entry's history ends with this move; the event before it is the state it left (histories keep their ends).
      moved(metrics, entry, entry.history.at(-2)?.state ?? 'new', now);
      return entry;
    },
    recordDeadLetter: async (record) => {
      const recorded = await ledger.recordDeadLetter(record);
      if (recorded) metrics.deadLettered(record.by, record.reason);
      return recorded;
    },
    renewLease: (...args) => ledger.renewLease(...args),
    get: (...args) => ledger.get(...args),
    list: (...args) => ledger.list(...args),
    countSince: (...args) => ledger.countSince(...args),
    listDeadLetters: () => ledger.listDeadLetters(),
    recordDecision: (record) => ledger.recordDecision(record),
    decisionOn: (subject) => ledger.decisionOn(subject),
    listDecisions: (since) => ledger.listDecisions(since),
  };
}

function moved(metrics: Metrics, entry: LedgerEntry, from: LedgerState | 'new', now: () => Date): void {
  const { kind, state: to } = entry;
  metrics.actionMoved(kind, from, to);
  if (to === 'pending-approval' && from !== 'pending-approval') metrics.holdCreated(kind);
  if (from === 'pending-approval' && to !== 'pending-approval') metrics.holdDecided(kind, to);
  // A containment's write went through: an audited rehearsal also ends `succeeded`, but its attempt says `audited`.
  if (to === 'succeeded' && from === 'running' && entry.attempts.at(-1)?.outcome === 'succeeded' && entry.source.rollbackOf === undefined) {
    // Until now, when the success is written: the event's own time is when its delivery began, before the API answered.
    const seconds = (now().getTime() - Date.parse(entry.createdAt)) / 1000;
    if (seconds >= 0) metrics.contained(kind, entry.source.type, seconds, entry.decidedBy?.verdict === 'approved');
  }
}
