import { ROLES } from '../shared/auth/caller';
import { defineEventHubFunction } from '../shared/azure/eventHubFunction';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { InputError } from '../shared/errors';
import { decideRiskEvents, decideRiskRecords } from '../shared/riskEvents';
import { runtime } from '../shared/runtime';

/**
 * POST /api/risk-events — Entra ID Protection's risk logs as its diagnostic settings stream them
 * (`{ "records": [ … ] }`), posted by a relay or replayed by hand: the same records the Event Hub trigger takes. Answers
 * 202 with what became of each record; 400 when the body is not such a list, or when none of its records can be read.
 */
export const riskEvents = defineHttpFunction({
  name: 'riskEvents',
  route: 'risk-events',
  methods: ['POST'],
  auth: { roles: [ROLES.submit] },
  body: 'json',
  async handle({ body, caller, log }) {
    const { engine } = await runtime();
    const records = await decideRiskRecords(body, engine, caller?.objectId ?? 'unknown', log);
    const unread = records.filter((r) => r.status === 'invalid');
    // Nothing in the body could be read: the caller sent the wrong thing, and is told which field first.
    if (records.length > 0 && unread.length === records.length) {
      const [first] = unread;
      throw new InputError(first?.field ?? 'records', first?.problem ?? 'no record could be read');
    }
    return { status: 202, jsonBody: { records } };
  },
});

/**
 * Event Hub `%RESPONDER_RISK_EVENT_HUB%`, where ID Protection's diagnostic setting streams its risk logs: each event's
 * records decided as over HTTP. An event that is not a body of records, or a record that cannot be read, is kept as a
 * dead-letter record (`responder deadletters`) and passed over (it would fail every time); a failure to decide (the
 * ledger or the queue unreachable) is retried with backoff, the records decided before it being found already done.
 */
export const riskEventHub = defineEventHubFunction({
  name: 'riskEventHub',
  eventHubName: '%RESPONDER_RISK_EVENT_HUB%',
  connection: 'EventHubConnection',
  retry: { strategy: 'exponentialBackoff', maxRetryCount: 8, minimumInterval: { seconds: 10 }, maximumInterval: { minutes: 5 } },
  async handle(events, log) {
    const { engine, ledger } = await runtime();
    await decideRiskEvents(events, engine, ledger, log);
  },
});
