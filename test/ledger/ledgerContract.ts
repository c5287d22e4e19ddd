import { describe, expect, it } from 'vitest';
import {
  attemptCount,
  LEDGER_LOG_LIMITS,
  LedgerConflictError,
  LedgerTransitionError,
  type ActionLedger,
  type LedgerAttempt,
  type NewLedgerEntry,
} from '../../shared/ledger/ledger';

/**
 * The contract every ActionLedger adapter must keep. The in-memory twin and the Table storage adapter (against Azurite) both run it.
 */
export function ledgerContract(name: string, make: () => ActionLedger | Promise<ActionLedger>): void {
  const entry = (key: string, overrides: Partial<NewLedgerEntry> = {}): NewLedgerEntry => ({
    key,
    kind: 'disableUser',
    target: { type: 'user', id: '6e7b768e-07e2-4810-8459-485f84f8f204' },
    params: {},
    mode: 'enforce',
    reason: 'test',
    source: { type: 'incident', subject: 'incident-a' },
    state: 'planned',
    createdAt: '2026-11-28T10:00:00.000Z',
    by: 'engine',
    ...overrides,
  });
  const at = '2026-11-28T10:01:00.000Z';

  describe(`${name} ledger contract`, () => {
    it('creates an entry once; a second create returns the first', async () => {
      const ledger = await make();
      const first = await ledger.create(entry('k1'));
      const second = await ledger.create(entry('k1', { reason: 'other' }));
      expect(first.created).toBe(true);
      expect(second).toEqual({ created: false, entry: first.entry });
      expect(first.entry.history).toEqual([{ at: '2026-11-28T10:00:00.000Z', state: 'planned', by: 'engine' }]);
    });

    it('moves along allowed transitions, recording each, with a new ETag each time', async () => {
      const ledger = await make();
      const { entry: planned } = await ledger.create(entry('k1'));
      const queued = await ledger.transition('k1', planned.etag, 'queued', { by: 'engine', at });
      const running = await ledger.transition('k1', queued.etag, 'running', { by: 'worker', at, note: 'delivery 1' });
      const done = await ledger.transition(
        'k1',
        running.etag,
        'succeeded',
        { by: 'worker', at },
        { attempts: [{ attempt: 0, at, outcome: 'succeeded', detail: 'ok', status: 204 }], rollback: { accountEnabled: true } },
      );
      expect(new Set([planned.etag, queued.etag, running.etag, done.etag]).size).toBe(4);
      expect(done.history.map((h) => h.state)).toEqual(['planned', 'queued', 'running', 'succeeded']);
      expect(done).toMatchObject({ state: 'succeeded', rollback: { accountEnabled: true }, updatedAt: at });
      expect(await ledger.get('k1')).toEqual(done);
    });

    it('refuses a stale ETag and a forbidden transition', async () => {
      const ledger = await make();
      const { entry: planned } = await ledger.create(entry('k1'));
      await ledger.transition('k1', planned.etag, 'queued', { by: 'engine', at });
      await expect(ledger.transition('k1', planned.etag, 'queued', { by: 'engine', at })).rejects.toBeInstanceOf(LedgerConflictError);
      const current = (await ledger.get('k1'))!;
      await expect(ledger.transition('k1', current.etag, 'rolled-back', { by: 'x', at })).rejects.toBeInstanceOf(LedgerTransitionError);
      await expect(ledger.transition('missing', 'W/"1"', 'queued', { by: 'x', at })).rejects.toBeInstanceOf(LedgerConflictError);
    });

    it("renews a running entry's lease without a history event, ETag-guarded, and drops the lease when it leaves running", async () => {
      const ledger = await make();
      const { entry: planned } = await ledger.create(entry('k1'));
      const queued = await ledger.transition('k1', planned.etag, 'queued', { by: 'engine', at });
      const lease = { holder: 'delivery 1 of k1 (0a1b2c3d)', until: '2026-11-28T10:02:00.000Z' };
      const running = await ledger.transition('k1', queued.etag, 'running', { by: 'worker', at, note: 'delivery 1' }, { lease });
      expect(running.lease).toEqual(lease);
      const renewed = { ...lease, until: '2026-11-28T10:02:20.000Z' };
      const etag = await ledger.renewLease('k1', running.etag, renewed);
      expect(etag).not.toBe(running.etag);
      const stored = (await ledger.get('k1'))!;
      // Renewals change the lease alone: no history line, the same updatedAt, however long the execution is kept alive.
      expect(stored).toEqual({ ...running, lease: renewed, etag });
      // The renewal moved the ETag: a write with the one read before it is refused, as is a renewal of a stale read.
      await expect(ledger.transition('k1', running.etag, 'succeeded', { by: 'worker', at })).rejects.toBeInstanceOf(LedgerConflictError);
      await expect(ledger.renewLease('k1', running.etag, renewed)).rejects.toBeInstanceOf(LedgerConflictError);
      await expect(ledger.renewLease('missing', etag, renewed)).rejects.toBeInstanceOf(LedgerConflictError);
      const done = await ledger.transition('k1', etag, 'succeeded', { by: 'worker', at });
      expect(done.lease).toBeUndefined();
      expect((await ledger.get('k1'))?.lease).toBeUndefined();
      expect(done.history.map((h) => h.state)).toEqual(['planned', 'queued', 'running', 'succeeded']);
    });

    it('lets exactly one of many concurrent writers win', async () => {
      const ledger = await make();
      const { entry: planned } = await ledger.create(entry('k1'));
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => ledger.transition('k1', planned.etag, 'queued', { by: 'engine', at })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    });

    it('does not let a caller change stored state by mutating what it read', async () => {
      const ledger = await make();
      const { entry: e } = await ledger.create(entry('k1'));
      e.state = 'succeeded';
      e.history.push({ at, state: 'succeeded', by: 'mallory' });
      expect((await ledger.get('k1'))?.state).toBe('planned');
    });

    it('lists by subject, state and any target identifier, oldest first, and counts what caps spend in a window', async () => {
      const ledger = await make();
      for (const [key, state, createdAt, subject] of [
        ['a', 'queued', '2026-11-28T10:00:00.000Z', 'incident-a'],
        ['b', 'pending-approval', '2026-11-28T10:05:00.000Z', 'incident-a'],
        ['c', 'blocked', '2026-11-28T10:06:00.000Z', 'incident-b'],
        ['d', 'queued', '2026-11-28T09:00:00.000Z', 'incident-b'],
      ] as const) {
        const { entry: e } = await ledger.create(
          entry(key, { createdAt, state: state === 'queued' ? 'planned' : state, source: { type: 'incident', subject } }),
        );
        if (state === 'queued') await ledger.transition(key, e.etag, 'queued', { by: 'engine', at });
      }
      expect((await ledger.list({ subject: 'incident-a' })).map((e) => e.key).sort()).toEqual(['a', 'b']);
      expect((await ledger.list({ state: 'queued' })).map((e) => e.key)).toEqual(['d', 'a']);
      expect((await ledger.list({ subject: 'incident-b', state: 'blocked' })).map((e) => e.key)).toEqual(['c']);
      expect(await ledger.list({ target: '6E7B768E-07E2-4810-8459-485F84F8F204', state: 'pending-approval' })).toHaveLength(1);
      expect(await ledger.list({ target: 'someone-else@contoso.com' })).toEqual([]);
      expect(await ledger.countSince('disableUser', '2026-11-28T09:30:00.000Z')).toBe(1);
      expect(await ledger.countSince('disableUser', '2026-11-28T08:00:00.000Z')).toBe(2);
      expect(await ledger.countSince('isolateDevice', '2026-11-28T08:00:00.000Z')).toBe(0);
    });

    it('keeps each dead-lettered message once, apart from the entries (caps and subject queries do not see it)', async () => {
      const ledger = await make();
      await ledger.create(entry('k1', { state: 'queued' }));
      const record = {
        messageId: 'odd/id#with?chars\\:a1',
        at,
        by: 'broker' as const,
        reason: 'MaxDeliveryCountExceeded',
        description: 'delivered 10 times',
        deliveryCount: 10,
        body: '{"kind":"disableUser"}',
        actionKey: 'k1',
        incidentArmId: '/subscriptions/x/incidents/1',
      };
      expect(await ledger.recordDeadLetter(record)).toBe(true);
      expect(await ledger.recordDeadLetter({ ...record, reason: 'again' })).toBe(false);
      await ledger.recordDeadLetter({
        messageId: 'm2',
        at: '2026-11-28T10:02:00.000Z',
        by: 'worker',
        reason: 'SchemaInvalid',
        description: 'kind: required',
        deliveryCount: 1,
        body: '{}',
      });
      expect(await ledger.listDeadLetters()).toEqual([record, expect.objectContaining({ messageId: 'm2', by: 'worker' })]);
      expect(await ledger.countSince('disableUser', '2026-11-28T08:00:00.000Z')).toBe(1);
      expect(await ledger.list({ subject: 'incident-a' })).toHaveLength(1);
    });

    it('stays writable however long an action is followed: long histories and attempt lists keep their ends, long texts are cut', async () => {
      const ledger = await make();
      const { entry: created } = await ledger.create(entry('k1', { reason: 'r'.repeat(10_000), stateReason: 's'.repeat(10_000) }));
      expect(created.reason).toHaveLength(4000);
      expect(created.stateReason).toHaveLength(2000);
      let current = await ledger.transition('k1', created.etag, 'queued', { by: 'engine', at });
      const attempts: LedgerAttempt[] = [];
      // Days of follow-ups of a pending isolation (a device that stays offline), each with a long answer in its note.
      for (let i = 0; i < 300; i++) {
        current = await ledger.transition('k1', current.etag, 'running', { by: 'worker', at, note: `delivery ${i}` });
        attempts.push({ attempt: 0, at, outcome: 'pending', detail: `follow-up ${i}: ${'d'.repeat(3000)}` });
        current = await ledger.transition('k1', current.etag, 'queued', { by: 'worker', at, note: `${i}: ${'n'.repeat(5000)}` }, { attempts });
      }
      const stored = (await ledger.get('k1'))!;
      expect(stored.history).toHaveLength(LEDGER_LOG_LIMITS.keep);
      expect(stored.history.slice(0, 2).map((h) => h.state)).toEqual(['planned', 'queued']);
      expect(stored.history[LEDGER_LOG_LIMITS.first]).toMatchObject({ by: 'ledger', omitted: 602 - LEDGER_LOG_LIMITS.keep + 1 });
      expect(stored.history.at(-1)?.note).toMatch(/^299: n+…$/);
      expect(stored.history.every((h) => (h.note?.length ?? 0) <= 500)).toBe(true);
      expect(stored.attempts).toHaveLength(LEDGER_LOG_LIMITS.keep);
      expect(attemptCount(stored.attempts)).toBe(300);
      expect(stored.attempts.at(-1)?.detail).toMatch(/^follow-up 299: /);
      // …and it still reaches a final state.
      current = await ledger.transition('k1', current.etag, 'running', { by: 'worker', at });
      expect((await ledger.transition('k1', current.etag, 'succeeded', { by: 'worker', at })).state).toBe('succeeded');
    });

    it('cuts what a dead-lettered message brings to fit', async () => {
      const ledger = await make();
      expect(
        await ledger.recordDeadLetter({
          messageId: 'm'.repeat(1000),
          at,
          by: 'broker',
          reason: 'r'.repeat(1000),
          description: 'd'.repeat(100_000),
          body: 'b'.repeat(100_000),
        }),
      ).toBe(true);
      const [record] = await ledger.listDeadLetters();
      expect([record!.messageId.length, record!.reason.length, record!.description.length, record!.body.length]).toEqual([256, 256, 2000, 30_000]);
      expect(record!.body.endsWith('…')).toBe(true);
    });

    it('keeps the last decision per subject (any case), apart from the entries, listed by when it was made, its texts cut', async () => {
      const ledger = await make();
      const subject = '/subscriptions/x/incidents/1';
      const decision = { subject, at: '2026-11-28T10:00:00.000Z', by: 'relay', summary: 'nothing to do', actions: 0, policy: 'p1' };
      await ledger.recordDecision(decision);
      await ledger.recordDecision({ ...decision, subject: '/subscriptions/x/incidents/2', at: '2026-11-28T08:00:00.000Z' });
      // The incident's next update decides again: the record is its last decision, not a second one.
      await ledger.recordDecision({ ...decision, subject: subject.toUpperCase(), at: '2026-11-28T11:00:00.000Z', summary: 'planned 1', actions: 1 });
      expect(await ledger.listDecisions('2026-11-28T09:00:00.000Z')).toEqual([
        { ...decision, subject: subject.toUpperCase(), at: '2026-11-28T11:00:00.000Z', summary: 'planned 1', actions: 1 },
      ]);
      expect((await ledger.listDecisions('2026-11-28T00:00:00.000Z')).map((d) => d.at)).toEqual(['2026-11-28T08:00:00.000Z', '2026-11-28T11:00:00.000Z']);
      expect(await ledger.decisionOn(subject)).toMatchObject({ summary: 'planned 1', actions: 1 });
      expect(await ledger.decisionOn('/subscriptions/x/incidents/3')).toBeUndefined();
      expect(await ledger.list()).toEqual([]);
      expect(await ledger.listDeadLetters()).toEqual([]);
      await ledger.recordDecision({ ...decision, subject: 's'.repeat(5000), by: 'b'.repeat(1000), summary: 'x'.repeat(10_000) });
      const long = (await ledger.listDecisions('2026-11-28T00:00:00.000Z')).find((d) => d.subject.startsWith('sss'));
      expect([long?.subject.length, long?.by.length, long?.summary.length]).toEqual([2048, 256, 2000]);
      expect(await ledger.decisionOn('s'.repeat(5000))).toEqual(long);
    });
  });
}
