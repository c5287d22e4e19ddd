import { defineQueueFunction } from '../shared/azure/queueFunction';
import { runtime } from '../shared/runtime';

/**
 * Service Bus queue `actions` — executes one ActionCommand per message: claims it in the ledger, re-checks
 * protection, executes (audit-only until executors exist), records the outcome.
 */
export const actionWorker = defineQueueFunction({
  name: 'actionWorker',
  queueName: 'actions',
  connection: 'ServiceBusConnection',
  async handle(message, delivery, log) {
    const { engine } = await runtime();
    const outcome = await engine.runCommand(message, delivery, log);
    log.debug({ actionId: outcome.key, outcome: outcome.outcome }, outcome.detail);
  },
});
