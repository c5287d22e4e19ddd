import { defineQueueFunction } from '../shared/azure/queueFunction';
import { runtime } from '../shared/runtime';

/**
 * Service Bus queue `actions` — one message at a time: an ActionCommand (claim it in the ledger, re-check protection,
 * execute, record, report) or an incident to evaluate again now that Sentinel may have added its entities.
 */
export const actionWorker = defineQueueFunction({
  name: 'actionWorker',
  queueName: 'actions',
  connection: 'ServiceBusConnection',
  async handle(message, delivery, log) {
    const { worker } = await runtime();
    const outcome = await worker.handleMessage(message, delivery, log);
    log.debug({ actionId: outcome.key, outcome: outcome.outcome }, outcome.detail);
  },
});
