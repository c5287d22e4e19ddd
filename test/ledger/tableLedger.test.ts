import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTableLedger } from '../../shared/ledger/tableLedger';
import { Azurite } from '../support/azurite';
import { ledgerContract } from './ledgerContract';

let azurite: Azurite;
beforeAll(async () => {
  azurite = await Azurite.start();
}, 30_000);
afterAll(() => azurite.stop());

let tables = 0;
// A fresh table per test: the same contract the in-memory twin passes, against the real SDK and Azurite.
ledgerContract('Azure Table storage (Azurite)', () => openTableLedger({ connectionString: azurite.connectionString }, `ledger${++tables}`));

describe('the Table storage ledger', () => {
  it('keeps what a rollback needs and the API answers, across a reload', async () => {
    const ledger = await openTableLedger({ connectionString: azurite.connectionString }, 'ledgerreload');
    const { entry } = await ledger.create({
      key: 'ab'.repeat(16),
      kind: 'isolateDevice',
      target: { type: 'device', id: 'c'.repeat(40), fqdn: "o'brien-pc.contoso.com" },
      params: { isolationType: 'Selective' },
      mode: 'enforce',
      reason: "rule x: a reason with 'quotes'",
      source: { type: 'incident', subject: "incident-with-'quote'", incidentArmId: '/subscriptions/x' },
      state: 'planned',
      createdAt: '2026-11-28T10:00:00.000Z',
      by: 'engine',
    });
    const at = '2026-11-28T10:00:05.000Z';
    const queued = await ledger.transition(entry.key, entry.etag, 'queued', { by: 'engine', at });
    const running = await ledger.transition(entry.key, queued.etag, 'running', { by: 'worker', at });
    await ledger.transition(
      entry.key,
      running.etag,
      'succeeded',
      { by: 'worker', at, note: 'isolated' },
      {
        attempts: [{ attempt: 0, at, outcome: 'succeeded', detail: 'isolated', status: 201 }],
        rollback: { machineId: 'c'.repeat(40), isolationActionId: 'a1' },
      },
    );
    const reloaded = await (await openTableLedger({ connectionString: azurite.connectionString }, 'ledgerreload')).get(entry.key);
    expect(reloaded).toMatchObject({
      state: 'succeeded',
      target: { fqdn: "o'brien-pc.contoso.com" },
      rollback: { isolationActionId: 'a1' },
      attempts: [{ status: 201 }],
    });
    expect(reloaded?.history.map((h) => h.state)).toEqual(['planned', 'queued', 'running', 'succeeded']);
    expect((await ledger.list({ subject: "incident-with-'quote'" })).map((e) => e.key)).toEqual([entry.key]);
  });
});
