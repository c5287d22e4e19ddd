import type { ResponderEngine, Submission } from './engine';
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
