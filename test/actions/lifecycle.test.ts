import { describe, expect, it } from 'vitest';
import type { ExecutionOutcome } from '../../shared/actions/executor';
import {
  afterExecution,
  claimStep,
  deadLetterStep,
  deferral,
  DEFERRAL_SPREAD_MAX_MS,
  holding,
  MAX_HOLD_MS,
  releaseDevice,
  renewal,
  renewalIntervalMs,
  RUNNING_LEASE_MS,
  takeDevice,
  TAKEOVER_MARGIN_MS,
  type Holding,
  LIFECYCLE_TIMINGS,
  type LifecycleTimings,
  type Renewal,
  type Step,
} from '../../shared/actions/lifecycle';
import { RETRY_POLICY } from '../../shared/actions/retryPolicy';
import { canTransition, LEDGER_STATES, type LedgerEntry, type LedgerState } from '../../shared/ledger/ledger';
import { command } from '../fixtures/commands';

/** The worker's rules, table by table: each row is an input and the transition it must produce. */
const NOW = new Date('2026-12-01T12:00:00.000Z');
const STARTED = '2026-12-01T11:59:59.000Z';
const TIMINGS: LifecycleTimings = LIFECYCLE_TIMINGS;
const cmd = command('isolateDevice', { type: 'device', id: 'a'.repeat(40) });

function entry<S extends LedgerState>(state: S, updatedAt = STARTED, lease?: { holder: string; until: string }): LedgerEntry & { state: S } {
  return {
    ...(lease && { lease }),
    key: cmd.idempotencyKey,
    kind: cmd.kind,
    target: cmd.target,
    params: {},
    mode: 'enforce',
    reason: 'test',
    source: cmd.source,
    state,
    createdAt: STARTED,
    updatedAt,
    history: [],
    attempts: [{ attempt: 0, at: STARTED, outcome: 'pending', detail: 'earlier' }],
    etag: '1',
  };
}

describe('claimStep: what a delivery does with the entry it names, for every ledger state', () => {
  const claimedAt = (ms: number) => new Date(NOW.getTime() - RUNNING_LEASE_MS + ms).toISOString();
  const leaseUntil = (ms: number) => ({ holder: 'delivery 1 of n', until: new Date(NOW.getTime() + ms).toISOString() });
  const lease = { holder: 'delivery 1 of m', until: new Date(NOW.getTime() + RUNNING_LEASE_MS).toISOString() };
  const table: Array<[string, LedgerEntry, ReturnType<typeof claimStep>]> = [
    ['planned: the message outran the submitter', entry('planned'), { claim: 'move', to: 'queued', note: 'delivered before the submitter marked it queued' }],
    ['queued: claimed, for one lease', entry('queued'), { claim: 'move', to: 'running', note: 'delivery 1 of m', lease }],
    [
      'running, its lease (renewed since the claim) alive: look again after it',
      entry('running', claimedAt(-10 * RUNNING_LEASE_MS), leaseUntil(1000)),
      { claim: 'wait', until: new Date(NOW.getTime() + 1000 + TAKEOVER_MARGIN_MS) },
    ],
    [
      'running, its lease lapsed: taken over',
      entry('running', claimedAt(RUNNING_LEASE_MS), leaseUntil(0)),
      { claim: 'move', to: 'running', note: 'taken over: lease expired (delivery 1 of m)', lease },
    ],
    [
      'running, claimed without a lease, alive: one lease from the claim',
      entry('running', claimedAt(1000)),
      { claim: 'wait', until: new Date(NOW.getTime() + 1000 + TAKEOVER_MARGIN_MS) },
    ],
    [
      'running, claimed without a lease, ended: taken over',
      entry('running', claimedAt(0)),
      { claim: 'move', to: 'running', note: 'taken over: lease expired (delivery 1 of m)', lease },
    ],
    ['pending-approval: not for a delivery', entry('pending-approval'), { claim: 'done', detail: 'already pending-approval' }],
    ['succeeded', entry('succeeded'), { claim: 'done', detail: 'already succeeded' }],
    ['failed', entry('failed'), { claim: 'done', detail: 'already failed' }],
    ['dead-lettered', entry('dead-lettered'), { claim: 'done', detail: 'already dead-lettered' }],
    ['blocked', entry('blocked'), { claim: 'done', detail: 'already blocked' }],
    ['rolled-back', entry('rolled-back'), { claim: 'done', detail: 'already rolled-back' }],
    ['denied: an analyst said no', entry('denied'), { claim: 'done', detail: 'already denied' }],
    ['expired: no analyst decided in time', entry('expired'), { claim: 'done', detail: 'already expired' }],
    // Never sent while its verdict waits for data: a command naming it (an older policy's) does not run it.
    ['waiting: for data, not for a delivery', entry('waiting'), { claim: 'done', detail: 'already waiting' }],
    ['not-needed: the data, once read, did not want it', entry('not-needed'), { claim: 'done', detail: 'already not-needed' }],
  ];

  it('covers every state', () => {
    expect(new Set(table.map(([, e]) => e.state))).toEqual(new Set(LEDGER_STATES));
  });

  it.each(table)('%s', (_what, given, expected) => {
    const step = claimStep(given, NOW, TIMINGS, 'delivery 1 of m');
    expect(step).toEqual(expected);
    if (step.claim === 'move') expect(canTransition(given.state, step.to)).toBe(true);
  });
});

describe('afterExecution: the transition each outcome produces for a running entry', () => {
  const failed = (cls: 'transient' | 'permanent' | 'blocked', extra = {}): ExecutionOutcome => ({
    outcome: 'failed',
    class: cls,
    detail: 'the API said no',
    ...extra,
  });
  const at = { started: STARTED, now: NOW };
  const table: Array<{
    what: string;
    outcome: ExecutionOutcome;
    attempt?: number;
    timings?: Partial<LifecycleTimings>;
    expect: Partial<Step> & Record<string, unknown>;
  }> = [
    {
      what: 'succeeded: final, with what a rollback needs, reported',
      outcome: { outcome: 'succeeded', alreadyDone: false, detail: 'isolated', rollback: { machineId: 'm' } },
      expect: {
        write: { to: 'succeeded', note: 'isolated', patch: { attempts: expect.any(Array), rollback: { machineId: 'm' } } },
        report: 'succeeded',
        result: 'succeeded',
      },
    },
    {
      what: 'audited: final, reported as a rehearsal',
      outcome: { outcome: 'audited', detail: 'would isolate' },
      expect: { write: { to: 'succeeded', note: 'would isolate', patch: { attempts: expect.any(Array) } }, report: 'audited', result: 'audited' },
    },
    {
      what: 'held: waits for a human, reported',
      outcome: { outcome: 'held', detail: 'two records' },
      expect: {
        write: { to: 'pending-approval', note: 'two records', patch: { attempts: expect.any(Array), stateReason: 'two records' } },
        report: 'held',
        result: 'held',
      },
    },
    {
      what: "pending: queued, followed up after the executor's wait, not reported",
      outcome: { outcome: 'pending', detail: 'Pending', followUpAfterMs: 30_000 },
      expect: {
        write: { to: 'queued', note: 'Pending; follow-up in 30 s', patch: { attempts: expect.any(Array) } },
        schedule: { command: { ...cmd, followUp: 1 }, at: new Date(NOW.getTime() + 30_000) },
        result: 'pending',
        report: undefined,
      },
    },
    {
      what: 'pending, with RESPONDER_FOLLOW_UP_SECONDS: its wait wins',
      outcome: { outcome: 'pending', detail: 'Pending', followUpAfterMs: 30_000 },
      timings: { followUpMs: 2000 },
      expect: {
        write: { to: 'queued', note: 'Pending; follow-up in 2 s', patch: { attempts: expect.any(Array) } },
        schedule: { command: { ...cmd, followUp: 1 }, at: new Date(NOW.getTime() + 2000) },
      },
    },
    {
      what: 'transient: queued, the next attempt after its Retry-After',
      outcome: failed('transient', { status: 429, retryAfterMs: 20_000 }),
      expect: {
        write: { to: 'queued', note: 'the API said no; attempt 2 in 20 s', patch: { attempts: expect.any(Array) } },
        schedule: { command: { ...cmd, attempt: 1 }, at: new Date(NOW.getTime() + 20_000) },
        result: 'retrying',
        report: undefined,
      },
    },
    {
      what: 'transient on the last attempt: failed, reported',
      outcome: failed('transient'),
      attempt: RETRY_POLICY.maxAttempts - 1,
      expect: {
        write: {
          to: 'failed',
          note: `gave up after ${RETRY_POLICY.maxAttempts} attempts: the API said no`,
          patch: expect.objectContaining({ stateReason: `gave up after 8 attempts: the API said no` }),
        },
        report: 'failed',
        result: 'failed',
        schedule: undefined,
      },
    },
    {
      what: 'permanent: failed at once, reported',
      outcome: failed('permanent', { status: 404 }),
      expect: {
        write: { to: 'failed', note: 'the API said no', patch: expect.objectContaining({ stateReason: 'the API said no' }) },
        report: 'failed',
        result: 'failed',
        schedule: undefined,
      },
    },
    {
      what: 'blocked: final, for a human, reported',
      outcome: failed('blocked', { status: 403 }),
      expect: {
        write: { to: 'blocked', note: 'the API said no', patch: expect.objectContaining({ stateReason: 'the API said no' }) },
        report: 'blocked',
        result: 'blocked',
        schedule: undefined,
      },
    },
    {
      what: "paced: deferred for the budget's wait, spending no attempt, not reported",
      outcome: { outcome: 'failed', class: 'paced', api: 'defender-isolate', retryAfterMs: 8000, detail: 'the defender-isolate budget is spent' },
      expect: {
        write: { to: 'queued', note: `the defender-isolate budget is spent; deferred to ${new Date(NOW.getTime() + 8000).toISOString()}` },
        schedule: { command: { ...cmd, deferral: 1 }, at: new Date(NOW.getTime() + 8000) },
        result: 'deferred',
        report: undefined,
      },
    },
  ];

  it.each(table)('$what', ({ outcome, attempt, timings, expect: expected }) => {
    const running = entry('running');
    const step = afterExecution(running, { ...cmd, attempt: attempt ?? 0 }, outcome, at, { ...TIMINGS, ...timings }, 0);
    // Absent and undefined are the same answer here: no report, nothing scheduled.
    expect({ report: undefined, schedule: undefined, ...step }).toMatchObject(expected);
    expect(canTransition('running', step.write.to)).toBe(true);
    // Every outcome but a deferral adds exactly one attempt, with the API's answer.
    if (step.result === 'deferred') expect(step.write.patch).toBeUndefined();
    else {
      expect(step.write.patch?.attempts).toHaveLength(running.attempts.length + 1);
      const recorded = step.write.patch?.attempts?.at(-1);
      expect(recorded).toMatchObject({ attempt: attempt ?? 0, at: STARTED, detail: outcome.detail });
      if (outcome.outcome === 'failed' && outcome.class !== 'paced' && outcome.status) expect(recorded?.status).toBe(outcome.status);
    }
  });

  it('a paced action given a turn comes back a lead ahead of it, unspread, carrying it; what follows its execution waits for its own', () => {
    const turn = { api: 'defender-isolate' as const, at: NOW.getTime() + 42_000, units: 1 };
    const paced = afterExecution(
      entry('running'),
      cmd,
      { outcome: 'failed', class: 'paced', api: 'defender-isolate', retryAfterMs: 42_000, turn, detail: 'spent' },
      at,
      TIMINGS,
      0.9,
    );
    expect(paced.schedule).toEqual({ command: { ...cmd, turn, deferral: 1 }, at: new Date(turn.at - TIMINGS.turnLeadMs) });
    const soon = afterExecution(
      entry('running'),
      cmd,
      { outcome: 'failed', class: 'paced', api: 'defender-isolate', retryAfterMs: 10, turn: { ...turn, at: NOW.getTime() + 10 }, detail: 'spent' },
      at,
      TIMINGS,
      0.9,
    );
    expect(soon.schedule?.at).toEqual(NOW);
    const followed = afterExecution(entry('running'), { ...cmd, turn }, { outcome: 'pending', followUpAfterMs: 30_000, detail: 'posted' }, at, TIMINGS, 0);
    expect(followed.schedule?.command).not.toHaveProperty('turn');
    const retried = afterExecution(entry('running'), { ...cmd, turn }, failed('transient'), at, TIMINGS, 0.5);
    expect(retried.schedule?.command).not.toHaveProperty('turn');
    const unturned = afterExecution(
      entry('running'),
      { ...cmd, turn },
      { outcome: 'failed', class: 'paced', api: 'defender-isolate', retryAfterMs: 1000, detail: 'spent' },
      at,
      TIMINGS,
      0,
    );
    expect(unturned.schedule?.command).not.toHaveProperty('turn');
  });

  it('a retry carries neither the follow-up count nor the deferrals of the attempt before it', () => {
    const step = afterExecution(entry('running'), { ...cmd, followUp: 3, deferral: 2 }, failed('transient'), at, TIMINGS, 0.5);
    expect(step.schedule?.command).not.toHaveProperty('followUp');
    expect(step.schedule?.command).not.toHaveProperty('deferral');
    expect(step.schedule?.command.attempt).toBe(1);
  });

  it('spreads retries by jitter, never sooner than a second, never later than the cap', () => {
    for (const jitter of [0, 0.25, 0.999]) {
      const step = afterExecution(entry('running'), { ...cmd, attempt: 6 }, failed('transient'), at, TIMINGS, jitter);
      const delay = (step.schedule?.at.getTime() ?? 0) - NOW.getTime();
      expect(delay).toBeGreaterThanOrEqual(1000);
      expect(delay).toBeLessThanOrEqual(RETRY_POLICY.capMs);
    }
  });
});

describe('deferrals, device leases and dead letters', () => {
  it('spreads a deferral over at most its wait, and at most 30 s more', () => {
    const at = (waitMs: number, jitter: number) => (deferral(cmd, NOW, waitMs, 'busy', jitter, TIMINGS).schedule?.at.getTime() ?? 0) - NOW.getTime();
    expect(at(5000, 0)).toBe(5000);
    expect(at(5000, 0.5)).toBe(7500);
    expect(at(120_000, 0.5)).toBe(120_000 + DEFERRAL_SPREAD_MAX_MS / 2);
  });

  it('lends a device to one holder until its lease ends, and frees it only for that holder', () => {
    const held = takeDevice(undefined, 'a', 0, 1000).next;
    expect(takeDevice(held, 'b', 999, 1000)).toEqual({ next: held, busy: held });
    expect(takeDevice(held, 'a', 999, 1000).busy).toBeUndefined(); // its own lease, renewed
    expect(takeDevice(held, 'b', 1000, 1000)).toEqual({ next: { holder: 'b', until: 2000 } }); // ended: taken over
    expect(releaseDevice(held, 'b')).toBe(held);
    expect(releaseDevice(held, 'a')).toBeUndefined();
  });

  it('renews its own device lease and takes back a lapsed one it still needs (its keep-alive)', () => {
    const held = takeDevice(undefined, 'a', 0, 1000).next;
    expect(takeDevice(held, 'a', 400, 1000)).toEqual({ next: { holder: 'a', until: 1400 } });
    expect(takeDevice(undefined, 'a', 400, 1000)).toEqual({ next: { holder: 'a', until: 1400 } }); // freed meanwhile
    const other = takeDevice(held, 'b', 1000, 1000).next; // lapsed, and another action took it
    expect(takeDevice(other, 'a', 1200, 1000).busy).toEqual(other); // lost: the keep-alive stops
  });

  it.each(LEDGER_STATES.map((state) => [state]))('a dead letter naming a %s action', (state) => {
    const to = deadLetterStep(state);
    if (['planned', 'queued', 'running'].includes(state)) expect(to && canTransition(state, to)).toBe(true);
    else expect(to).toBeUndefined(); // it ended another way: the record of the letter is all that is added
  });
});

describe('keep-alive: when a claim is renewed, and what a refused write means', () => {
  const HOLDER = 'delivery 1 of m (0a1b2c3d)';
  const claimed = new Date(NOW.getTime() - 30_000);
  const renewedAt = (ms: number): Renewal => ({ renew: true, lease: { holder: HOLDER, until: new Date(NOW.getTime() + ms).toISOString() } });
  const table: Array<{ what: string; claimedAt: Date; leaseMs?: number; expect: Renewal }> = [
    { what: 'soon after the claim: one more lease from now', claimedAt: claimed, expect: renewedAt(RUNNING_LEASE_MS) },
    { what: 'a configured lease is the one renewed', claimedAt: claimed, leaseMs: 5000, expect: renewedAt(5000) },
    { what: 'a long execution, within functionTimeout: renewed', claimedAt: new Date(NOW.getTime() - MAX_HOLD_MS + 1), expect: renewedAt(RUNNING_LEASE_MS) },
    {
      what: 'past functionTimeout: no longer renewed (the host gave up on the execution; a redelivery takes over)',
      claimedAt: new Date(NOW.getTime() - MAX_HOLD_MS),
      expect: { renew: false, why: 'held for 300 s, longer than an execution may run: no longer renewed' },
    },
  ];

  it.each(table)('$what', ({ claimedAt, leaseMs, expect: expected }) => {
    expect(renewal(HOLDER, claimedAt, NOW, { ...TIMINGS, leaseMs: leaseMs ?? RUNNING_LEASE_MS })).toEqual(expected);
  });

  it('renews every third of the lease: two renewals in a row may fail before it lapses', () => {
    expect(renewalIntervalMs(RUNNING_LEASE_MS)).toBe(20_000);
    expect(renewalIntervalMs(RUNNING_LEASE_MS) * 3).toBeLessThanOrEqual(RUNNING_LEASE_MS);
  });

  const own = { holder: HOLDER, until: NOW.toISOString() };
  const rows: Array<[string, LedgerEntry | undefined, Holding['held'], string?]> = [
    ['running under its own lease: its own renewal moved the ETag; go on', entry('running', STARTED, own), true],
    [
      "running under another delivery's lease: taken over",
      entry('running', STARTED, { holder: 'delivery 2 of m (99999999)', until: own.until }),
      false,
      'taken over by delivery 2 of m (99999999)',
    ],
    ['running without a lease (claimed by an older worker)', entry('running'), false, 'taken over by another delivery'],
    ['queued again', entry('queued'), false, 'the action is queued since'],
    ['succeeded (another delivery finished it)', entry('succeeded'), false, 'the action is succeeded since'],
    ['dead-lettered by the reconciler', entry('dead-lettered'), false, 'the action is dead-lettered since'],
    ['gone', undefined, false, 'the entry is gone'],
  ];

  it.each(rows)('%s', (_what, current, held, detail) => {
    const judged = holding(current, HOLDER);
    expect(judged.held).toBe(held);
    if (judged.held) expect(judged.entry).toBe(current);
    else expect(judged.detail).toBe(detail);
  });
});
