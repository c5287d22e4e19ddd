import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ExecutionOutcome } from '../../shared/actions/executor';
import { LIFECYCLE_TIMINGS, MAX_HOLD_MS, RUNNING_LEASE_MS, TAKEOVER_MARGIN_MS } from '../../shared/actions/lifecycle';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import { LedgerConflictError, type LedgerLease } from '../../shared/ledger/ledger';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { ActionWorker } from '../../shared/worker';
import { DEMO, DEMO_DEVICES } from '../../sandbox/tenant';
import { command, recordedEntry } from '../fixtures/commands';

/**
 * The claim's keep-alive, on the worker itself with a controlled clock: a long execution keeps its action (and its
 * device), a holder that stalls past its lease is taken over, and whatever happens only one execution records.
 */
const START = new Date('2026-12-01T12:00:00.000Z');
const DONE: ExecutionOutcome = { outcome: 'succeeded', alreadyDone: false, detail: 'disabled adele.vance@contoso.com' };

/** The in-memory ledger, with a store's misbehaviours for renewals: hanging (a stalled instance), failing, answers lost. */
class RenewalFaultLedger extends MemoryLedger {
  renewals = 0;
  /** Renewals refused for a stale ETag: none while the worker keeps the one each renewal returns. */
  refused = 0;
  hang: Promise<void> | undefined;
  fail = false;
  loseAnswer = false;

  override async renewLease(key: string, etag: string, lease: LedgerLease): Promise<string> {
    this.renewals++;
    if (this.fail) throw new Error('503 Server Busy');
    if (this.hang) await this.hang;
    const written = await super.renewLease(key, etag, lease).catch((error: unknown) => {
      if (error instanceof LedgerConflictError) this.refused++;
      throw error;
    });
    if (this.loseAnswer) throw new Error('socket hang up: the write landed, its answer did not');
    return written;
  }
}

/** A promise settled from outside: an execution that ends when the test says. */
function gate<T>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** An execution that runs until the test ends it, lined up for the next delivery to run. */
function lineUpExecution(): (outcome: ExecutionOutcome) => void {
  const execution = gate<ExecutionOutcome>();
  executions.push(execution.promise);
  return execution.open;
}

let ledger: RenewalFaultLedger;
let shared: MemorySharedState;
let warnings: string[];
let executions: Array<Promise<ExecutionOutcome>>;
let worker: ActionWorker;

beforeEach(async () => {
  vi.useFakeTimers({ now: START, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  ledger = new RenewalFaultLedger();
  shared = new MemorySharedState();
  warnings = [];
  executions = [];
  worker = new ActionWorker({
    ledger,
    queue: new EmbeddedQueue(),
    shared,
    now: () => new Date(),
    log: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) }),
    random: () => 0,
    timings: LIFECYCLE_TIMINGS,
    // Each execution in turn takes the next outcome the test lined up; one not lined up ends at once.
    execute: () => executions.shift() ?? Promise.resolve(DONE),
    report: async () => undefined,
    incidents: () => Promise.reject(new Error('no incidents here')),
    submit: () => Promise.reject(new Error('no submissions here')),
  });
  await ledger.create(recordedEntry(disable));
});
afterEach(() => {
  vi.useRealTimers();
});

const disable = command('disableUser', { type: 'user', id: DEMO.adele });
const delivery = (n: number) => ({ messageId: disable.id, deliveryCount: n, enqueuedTimeUtc: START.toISOString() });
const at = (ms: number) => new Date(START.getTime() + ms).toISOString();
const states = async (key: string) => (await ledger.get(key))?.history.map((h) => h.state);

describe("the worker's keep-alive", () => {
  it('keeps a long execution its own: renewed every third of the lease, another delivery waits, the history gets no renewal lines', async () => {
    const finish = lineUpExecution();
    const first = worker.runCommand(disable, delivery(1));
    await vi.advanceTimersByTimeAsync(150_000); // two and a half leases

    expect([ledger.renewals, ledger.refused]).toEqual([7, 0]); // at 20 s, 40 s, … 140 s, each on the ETag the last one returned
    expect((await ledger.get(disable.idempotencyKey))?.lease?.until).toBe(at(140_000 + RUNNING_LEASE_MS));
    expect(await worker.runCommand(disable, delivery(2))).toEqual({
      key: disable.idempotencyKey,
      outcome: 'deferred',
      detail: `running in another delivery until ${at(200_000 + TAKEOVER_MARGIN_MS)}`,
    });

    finish(DONE);
    expect((await first).outcome).toBe('succeeded');
    expect(await states(disable.idempotencyKey)).toEqual(['queued', 'running', 'succeeded']);
    const renewals = ledger.renewals;
    await vi.advanceTimersByTimeAsync(3 * RUNNING_LEASE_MS);
    expect(ledger.renewals).toBe(renewals); // stopped with the execution
    expect(warnings).toEqual([]);
  });

  it("keeps the device's lease too: a second action on the device waits its turn however long the first runs", async () => {
    const device = { type: 'device' as const, id: DEMO_DEVICES.websrv1 };
    const isolate = command('isolateDevice', device, {}, 1);
    const other = command('isolateDevice', device, { params: { isolationType: 'Selective' } }, 2);
    for (const each of [isolate, other]) await ledger.create(recordedEntry(each));
    const finish = lineUpExecution();
    const first = worker.runCommand(isolate, { ...delivery(1), messageId: isolate.id });
    await vi.advanceTimersByTimeAsync(2 * RUNNING_LEASE_MS);

    const second = await worker.runCommand(other, { ...delivery(1), messageId: other.id });
    expect(second.outcome).toBe('deferred');
    expect(second.detail).toMatch(new RegExp(`^another action on ${DEMO_DEVICES.websrv1} is in flight \\(${isolate.idempotencyKey}\\)`));
    finish({ outcome: 'pending', followUpAfterMs: 30_000, detail: 'isolation posted' });
    expect((await first).outcome).toBe('pending');
    // Released with the execution's end: the next action on the device may go.
    const held = await shared.update<unknown, unknown>(`device:${DEMO_DEVICES.websrv1}`, (current) => ({ next: current, result: current }));
    expect(held).toBeUndefined();
  });

  it('takes over from a holder stalled past its lease; the stalled one learns it from its keep-alive and records nothing', async () => {
    const finishStalled = lineUpExecution();
    const finishTaker = lineUpExecution();
    const wake = gate<void>();
    ledger.hang = wake.promise; // the holder's instance stalls: its renewal at 20 s never comes back
    const first = worker.runCommand(disable, delivery(1));
    await vi.advanceTimersByTimeAsync(RUNNING_LEASE_MS);
    expect(ledger.renewals).toBe(1); // one at a time: the ticks at 40 s and 60 s found it still waiting

    ledger.hang = undefined;
    const second = worker.runCommand(disable, delivery(2)); // the redelivery: the lease has lapsed
    await vi.advanceTimersByTimeAsync(0);
    expect((await ledger.get(disable.idempotencyKey))?.history.at(-1)?.note).toMatch(/^taken over: lease expired \(delivery 2 of /);

    wake.open(); // the stalled instance resumes: its renewal is refused, the entry is another delivery's now
    await vi.advanceTimersByTimeAsync(0);
    expect(warnings).toEqual([expect.stringMatching(/^claim lost \(taken over by delivery 2 of .*\): this delivery's outcome will not be recorded$/)]);
    const renewalsAfterLoss = ledger.renewals;
    await vi.advanceTimersByTimeAsync(RUNNING_LEASE_MS / 2);
    expect(ledger.renewals - renewalsAfterLoss).toBe(1); // the new holder's renewal; the stalled one stopped renewing

    finishStalled(DONE); // its execution ends while the new holder's still runs: it must not record over it
    expect(await first).toEqual({
      key: disable.idempotencyKey,
      outcome: 'duplicate',
      detail: expect.stringMatching(/^not recorded: taken over by delivery 2 of /),
    });
    expect((await ledger.get(disable.idempotencyKey))?.state).toBe('running');

    finishTaker(DONE);
    expect((await second).outcome).toBe('succeeded');
    const entry = await ledger.get(disable.idempotencyKey);
    expect(entry?.history.map((h) => h.state)).toEqual(['queued', 'running', 'running', 'succeeded']);
    expect(entry?.attempts).toHaveLength(1); // exactly one execution recorded its outcome
  });

  it('stops renewing once an execution outlives functionTimeout: a redelivery takes over one lease later', async () => {
    const finish = lineUpExecution();
    const first = worker.runCommand(disable, delivery(1));
    await vi.advanceTimersByTimeAsync(MAX_HOLD_MS);
    expect(ledger.renewals).toBe(MAX_HOLD_MS / 20_000 - 1); // the tick at 300 s renews no more
    expect(warnings).toEqual(['held for 300 s, longer than an execution may run: no longer renewed']);
    expect((await ledger.get(disable.idempotencyKey))?.lease?.until).toBe(at(MAX_HOLD_MS - 20_000 + RUNNING_LEASE_MS));

    await vi.advanceTimersByTimeAsync(RUNNING_LEASE_MS - 20_000);
    expect((await worker.runCommand(disable, delivery(2))).outcome).toBe('succeeded');
    finish(DONE);
    expect((await first).outcome).toBe('duplicate');
    expect((await ledger.get(disable.idempotencyKey))?.attempts).toHaveLength(1);
  });

  it('survives a failing ledger: renewals are tried again each tick; once taken over, the final write is refused and nothing recorded', async () => {
    const finish = lineUpExecution();
    ledger.fail = true;
    const first = worker.runCommand(disable, delivery(1));
    await vi.advanceTimersByTimeAsync(RUNNING_LEASE_MS);
    expect(ledger.renewals).toBe(3);
    expect(warnings).toEqual(Array(3).fill('could not renew the claim; trying again at the next renewal'));

    ledger.fail = false;
    expect((await worker.runCommand(disable, delivery(2))).outcome).toBe('succeeded'); // taken over, finished at once
    ledger.fail = true; // the holder never gets a renewal through: only its final write tells it
    finish(DONE);
    expect(await first).toEqual({ key: disable.idempotencyKey, outcome: 'duplicate', detail: 'not recorded: the action is succeeded since' });
    expect((await ledger.get(disable.idempotencyKey))?.attempts).toHaveLength(1);
  });

  it('keeps its claim through a renewal that failed once, and through one whose answer was lost', async () => {
    const finish = lineUpExecution();
    ledger.fail = true;
    const first = worker.runCommand(disable, delivery(1));
    await vi.advanceTimersByTimeAsync(20_000);
    ledger.fail = false;
    ledger.loseAnswer = true; // at 40 s: written, but the worker hears an error and keeps the ETag it had
    await vi.advanceTimersByTimeAsync(20_000);
    ledger.loseAnswer = false; // at 60 s: refused (stale ETag); read again, still its own: goes on
    await vi.advanceTimersByTimeAsync(20_001);
    expect((await worker.runCommand(disable, delivery(2))).outcome).toBe('deferred');

    finish(DONE);
    expect((await first).outcome).toBe('succeeded');
    expect(await states(disable.idempotencyKey)).toEqual(['queued', 'running', 'succeeded']);
  });
});
