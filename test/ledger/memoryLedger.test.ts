import { describe, expect, it } from 'vitest';
import { canTransition, LEDGER_STATES } from '../../shared/ledger/ledger';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { ledgerContract } from './ledgerContract';

ledgerContract('in-memory', () => new MemoryLedger());

describe('the state machine', () => {
  it('has no way out of blocked or rolled-back, and only rollback out of succeeded', () => {
    for (const to of LEDGER_STATES) {
      expect(canTransition('blocked', to)).toBe(false);
      expect(canTransition('rolled-back', to)).toBe(false);
      expect(canTransition('succeeded', to)).toBe(to === 'rolled-back');
    }
  });
});
