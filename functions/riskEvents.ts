import { ROLES } from '../shared/auth/caller';
import { defineEventHubFunction } from '../shared/azure/eventHubFunction';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { bodyText } from '../shared/json';
import { InputError } from '../shared/errors';
import { decideRiskRecords, type RiskRecordAnswer } from '../shared/riskEvents';
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

/** Who the ledger says decided what came from the hub. */
export const RISK_EVENT_HUB_CALLER = 'risk-event-hub';

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
    const told: Record<RiskRecordAnswer['status'], number> = { decided: 0, ignored: 0, invalid: 0 };
    for (const event of events) {
      // Where the event sits, for the record of what could not be read: one per event, or per record of it.
      const at = `risk-event:${event.partitionId ?? '?'}:${event.sequenceNumber ?? event.enqueuedTimeUtc ?? '?'}`;
      const unread = (messageId: string, description: string, body: unknown) =>
        ledger.recordDeadLetter({
          messageId,
          at: new Date().toISOString(),
          by: 'risk-event-hub',
          reason: 'UnreadableRiskLog',
          description,
          body: bodyText(body),
        });
      try {
        const records = await decideRiskRecords(event.body, engine, RISK_EVENT_HUB_CALLER, log);
        for (const record of records) {
          told[record.status]++;
          if (record.status === 'invalid') await unread(`${at}:${record.index}`, `${record.field}: ${record.problem}`, recordAt(event.body, record.index));
        }
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
        told.invalid++;
        log.warn({ sequenceNumber: event.sequenceNumber, field: error.path }, `risk event not read, passed over: ${error.message}`);
        await unread(at, error.message, event.body);
      }
    }
    log.info({ events: events.length, ...told }, `risk events: ${told.decided} record(s) decided, ${told.ignored} ignored, ${told.invalid} not read`);
  },
});

/** A record of an event's body, as sent. */
function recordAt(body: unknown, index: number): unknown {
  const records = (body as { records?: unknown } | undefined)?.records;
  return Array.isArray(records) ? records[index] : undefined;
}
