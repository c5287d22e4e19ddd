import { describe, expect, it } from 'vitest';
import { canTransition, LEDGER_STATES } from '../../shared/ledger/ledger';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { ledgerContract } from './ledgerContract';

ledgerContract('in-memory', () => new MemoryLedger());

describe('the state machine', () => {
  it('has no way out of blocked, rolled-back, denied or expired, and only rollback out of succeeded', () => {
    for (const to of LEDGER_STATES) {
      for (const final of ['blocked', 'rolled-back', 'denied', 'expired'] as const) expect(canTransition(final, to), `${final} -> ${to}`).toBe(false);
      // succeeded -> succeeded records that a rollback was asked for; it changes nothing else.
      expect(canTransition('succeeded', to)).toBe(to === 'rolled-back' || to === 'succeeded');
    }
  });
});
