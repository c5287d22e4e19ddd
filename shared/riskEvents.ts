import type { HubEvent } from './azure/eventHubFunction';
import type { ResponderEngine, Submission } from './engine';
import { InputError } from './errors';
import { bodyText } from './json';
import type { ActionLedger } from './ledger/ledger';
import type { Logger } from './log';
import { normalizeRiskRecords, type RiskRecord } from './signals/risk';

/** What became of one record of a body of risk logs: its decision, why it asks for nothing, or what is wrong with it. */
export type RiskRecordAnswer = ({ index: number; category: string; status: 'decided' } & Submission) | Exclude<RiskRecord, { status: 'signal' }>;

/** Records decided at once: enough to overlap their reads and writes, few enough not to crowd out the worker. */
const CONCURRENT_RECORDS = 4;

/**
 * Decide each record of one body of Entra ID Protection risk logs (an Event Hub event, a POST /api/risk-events), each
 * through the same policy, protection, guardrails and caps as an incident. A record that cannot be read is logged with
 * the field at fault and answered, never retried: it would fail the same way every time. A failure to decide (the
 * ledger or the queue unreachable) is thrown once the records under way are done: the caller retries the body, and
 * what was decided is not decided twice (each record's subject keys its actions).
 */
export async function decideRiskRecords(body: unknown, engine: Pick<ResponderEngine, 'submit'>, by: string, log: Logger): Promise<RiskRecordAnswer[]> {
  const records = normalizeRiskRecords(body);
  const answers: RiskRecordAnswer[] = new Array<RiskRecordAnswer>(records.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const decideNext = async (): Promise<void> => {
    for (let i = next++; i < records.length && !failure; i = next++) {
      const record = records[i] as RiskRecord;
      if (record.status !== 'signal') {
        if (record.status === 'invalid') log.warn({ record: record.index, field: record.field }, `risk record not read: ${record.field}: ${record.problem}`);
        answers[i] = record;
        continue;
      }
      try {
        answers[i] = { index: record.index, category: record.category, status: 'decided', ...(await engine.submit(record.signal, by, log)) };
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENT_RECORDS, records.length) }, decideNext));
  if (failure) throw failure.error;
  return answers;
}

/** Who the ledger says decided what came from the hub. */
export const RISK_EVENT_HUB_CALLER = 'risk-event-hub';

/**
 * Decide each event of a batch from the risk-event hub as a body of risk logs. An event that is not a body of records,
 * or a record that cannot be read, is kept as a dead-letter record and passed over (it would fail every time); a failure
 * to decide is thrown, for the trigger's retry.
 */
export async function decideRiskEvents(
  events: readonly HubEvent[],
  engine: Pick<ResponderEngine, 'submit'>,
  ledger: Pick<ActionLedger, 'recordDeadLetter'>,
  log: Logger,
): Promise<void> {
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
}

/** A record of an event's body, as sent. */
function recordAt(body: unknown, index: number): unknown {
  const records = (body as { records?: unknown } | undefined)?.records;
  return Array.isArray(records) ? records[index] : undefined;
}
