import { describe, expect, it } from 'vitest';
import { againstLedger, commandFor } from '../../shared/actions/command';
import { DEMO } from '../../sandbox/tenant';
import { command, succeededEntry } from '../fixtures/commands';

/** againstLedger: a delivered command judged against its ledger entry, as pure data. */
describe('againstLedger', () => {
  const sent = command(
    'disableUser',
    { type: 'user', id: DEMO.adele, upn: 'adele.vance@contoso.com' },
    { source: { type: 'incident', subject: 'inc', ruleId: 'users' } },
  );
  const entry = succeededEntry(sent, undefined, { state: 'queued' });

  it('carries every command the engine sends for an entry: commandFor, and its copies (retry, follow-up, deferral, replay)', () => {
    for (const copy of [commandFor(entry, sent.createdAt), { ...commandFor(entry, sent.createdAt), attempt: 3, followUp: 2, deferral: 1, replay: 1 }])
      expect(againstLedger(copy, entry)).toEqual({ carry: copy, entry });
  });

  it('agrees with an entry read back from storage: properties in another order, undefined ones left out', () => {
    const stored = JSON.parse(JSON.stringify({ ...entry, target: { upn: 'adele.vance@contoso.com', id: DEMO.adele, type: 'user' } }));
    const message = { ...sent, source: { ...sent.source, incidentArmId: undefined }, params: { isolationType: undefined } };
    expect(againstLedger(message, stored)).toMatchObject({ carry: { kind: 'disableUser', target: stored.target } });
  });

  it('names every field of what it does on which the message differs', () => {
    const forged = { ...sent, mode: 'audit' as const, params: { isolationType: 'Full' as const }, target: { type: 'user' as const, id: DEMO.megan } };
    expect(againstLedger(forged, entry)).toEqual({
      refuse: 'LedgerMismatch',
      why: `the message disagrees with ledger entry ${sent.idempotencyKey} on its target, params, mode: the entry is the engine's record`,
    });
  });

  it('refuses a command the ledger does not hold', () => {
    expect(againstLedger(sent, undefined)).toMatchObject({ refuse: 'NoLedgerEntry' });
  });
});
