import { defineTimerFunction } from '../shared/azure/timerFunction';
import { runtime } from '../shared/runtime';

/**
 * Every five minutes: whatever Service Bus dead-lettered on `actions` (a worker that kept crashing, an expired
 * message) becomes a ledger record and, for an action, a `dead-lettered` entry and an incident comment, so nothing
 * disappears silently. Drains in pages until the dead-letter queue is empty.
 */
export const deadLetterReconciler = defineTimerFunction({
  name: 'deadLetterReconciler',
  schedule: '0 */5 * * * *',
  async handle(_timer, log) {
    const { deadLetters } = await runtime();
    let total = 0;
    for (let page = 0; page < 50; page++) {
      const { received, recorded } = await deadLetters.reconcile(100, log);
      total += recorded;
      if (received < 100) break;
    }
    if (total > 0) log.warn({ recorded: total }, `recorded ${total} dead-lettered messages in the ledger`);
  },
});
