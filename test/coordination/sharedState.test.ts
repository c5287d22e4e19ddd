import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBudgets, restamp, spend, type Budget, type BudgetRecord } from '../../shared/coordination/budget';
import { EnginePaced, Pacer, DEFAULT_API_BUDGETS } from '../../shared/coordination/pacer';
import { MemorySharedState, type SharedState } from '../../shared/coordination/sharedState';
import { TableSharedState } from '../../shared/coordination/tableSharedState';
import { openTableLedger } from '../../shared/ledger/tableLedger';
import { Azurite } from '../support/azurite';

let azurite: Azurite;
let tables = 0;
beforeAll(async () => {
  azurite = await Azurite.start();
}, 30_000);
afterAll(() => azurite.stop());

/** Two instances of the engine on one table: the cross-instance case. */
async function twoTableInstances(): Promise<[SharedState, SharedState]> {
  const name = `shared${++tables}`;
  const a = await openTableLedger({ connectionString: azurite.connectionString }, name);
  const b = await openTableLedger({ connectionString: azurite.connectionString }, name);
  return [new TableSharedState(a.table), new TableSharedState(b.table)];
}

const increment = (state: SharedState) => state.update<number, number>('counter', (n = 0) => ({ next: n + 1, result: n + 1 }));

describe.each([
  ['in memory', async (): Promise<[SharedState, SharedState]> => [new MemorySharedState(), new MemorySharedState()]],
  ['on Table storage (Azurite), two instances', twoTableInstances],
])('shared state %s', (name, make) => {
  it('applies every concurrent change exactly once (compare-and-swap, retried on conflict)', async () => {
    const [a, b] = await make();
    const shared = name === 'in memory' ? [a, a] : [a, b];
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => increment(shared[i % 2] as SharedState)));
    expect([...results].sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(await a.update<number, number | undefined>('counter', (n) => ({ next: n, result: n }))).toBe(40);
  });

  it('deletes a record when the change says so, and starts afresh after', async () => {
    const [a] = await make();
    await increment(a);
    await a.update<number, void>('counter', () => ({ next: undefined, result: undefined }));
    expect(await increment(a)).toBe(1);
  });
});

describe('sliding-window budgets', () => {
  it('never grant more than max uses in any window, whatever the arrival times', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 1000 }),
        (gaps, max, windowMs) => {
          const budgets: Budget[] = [{ max, windowMs }];
          let record: BudgetRecord | undefined;
          let now = 0;
          const granted: number[] = [];
          for (const gap of gaps) {
            now += gap % 300;
            const { next, result } = spend(record, budgets, now);
            record = next;
            if (result.granted) granted.push(now);
            else expect(result.retryAt).toBeGreaterThan(now);
          }
          for (const at of granted) expect(granted.filter((t) => t > at - windowMs && t <= at).length).toBeLessThanOrEqual(max);
        },
      ),
      { seed: 20261128, numRuns: 500 },
    );
  });

  it('say when the fullest of several windows frees up', () => {
    const budgets = parseBudgets('2/1s,3/10s');
    let record: BudgetRecord | undefined;
    const answers = [0, 100, 200, 1200, 1300].map((now) => {
      const { next, result } = spend(record, budgets, now);
      record = next;
      return result;
    });
    expect(answers).toEqual([{ granted: true }, { granted: true }, { granted: false, retryAt: 1000 }, { granted: true }, { granted: false, retryAt: 10_000 }]);
    expect(() => parseBudgets('100 per minute')).toThrow(/not a budget such as 100\/60s/);
  });
});

describe('reserved uses', () => {
  const budgets = [{ max: 3, windowMs: 1000 }];
  it('move their stamp to when the call really goes out, if the window has room then', () => {
    expect(restamp([[0, 300, 400]], budgets, 0, 700)).toEqual({ next: [[300, 400, 700]], result: { granted: true } });
  });
  it('keep the reservation and wait when the window is full at call time', () => {
    expect(restamp([[100, 300, 400]], budgets, 50, 700)).toEqual({ next: [[100, 300, 400]], result: { granted: false, retryAt: 1100 } });
  });
});

describe('the pacer', () => {
  it('reserves an execution’s calls up front; the calls inside draw on it, each stamped when it goes out', async () => {
    let now = 0;
    const state = new MemorySharedState();
    const pacer = new Pacer(state, { ...DEFAULT_API_BUDGETS, defender: [{ max: 3, windowMs: 1000 }] }, { now: () => now, maxInlineWaitMs: 0 });
    const reservation = await pacer.reserve({ defender: 3 });
    await expect(pacer.reserve({ defender: 1 })).rejects.toBeInstanceOf(EnginePaced); // the budget is held
    now = 200;
    await pacer.within(reservation, async () => {
      await pacer.take('defender');
      now = 300;
      await pacer.take('defender');
    });
    const record = await state.update<BudgetRecord, BudgetRecord | undefined>('pace:defender', (r) => ({ next: r, result: r }));
    expect(record).toEqual([[0, 200, 300]]); // one reservation stamp left unused, two calls stamped when made
  });

  it("spares a plan's reads only a tenth of a budget (one call per ten windows of a tiny one), and only while half is free", async () => {
    let now = 0;
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...DEFAULT_API_BUDGETS, defender: [{ max: 100, windowMs: 60_000 }], idprotection: [{ max: 1, windowMs: 1000 }] },
      { now: () => now, maxInlineWaitMs: 0 },
    );
    const spare = (api: 'defender' | 'idprotection') =>
      pacer
        .sparing(() => pacer.take(api))
        .then(
          () => 'read',
          () => 'refused',
        );
    const defender = [];
    for (let i = 0; i < 12; i++) defender.push(await spare('defender'));
    expect(defender.filter((r) => r === 'read')).toHaveLength(10);
    // ID Protection's one call a second: a plan may take one call in ten seconds, never two in a row.
    expect([await spare('idprotection'), await spare('idprotection')]).toEqual(['read', 'refused']);
    now = 5000;
    expect(await spare('idprotection')).toBe('refused');
    now = 10_500;
    expect(await spare('idprotection')).toBe('read');
    // With half of the shared budget spent by containment, a plan reads nothing more.
    now = 120_000;
    await pacer.reserve({ defender: 50 });
    expect(await spare('defender')).toBe('refused');
  });

  it('gives back what it reserved from one API when another API’s budget is spent', async () => {
    const budgets = { ...DEFAULT_API_BUDGETS, defender: [{ max: 3, windowMs: 1000 }], 'graph-writes': [{ max: 1, windowMs: 1000 }] };
    const pacer = new Pacer(new MemorySharedState(), budgets, { now: () => 0, maxInlineWaitMs: 0 });
    await pacer.reserve({ 'graph-writes': 1 });
    await expect(pacer.reserve({ defender: 2, 'graph-writes': 1 })).rejects.toBeInstanceOf(EnginePaced);
    await expect(pacer.reserve({ defender: 3 })).resolves.toBeDefined(); // the two defender units came back
  });

  it('waits briefly inside the call, and defers a long wait with Retry-After instead of sleeping', async () => {
    let now = 0;
    const slept: number[] = [];
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...DEFAULT_API_BUDGETS, defender: [{ max: 2, windowMs: 1000 }] },
      {
        now: () => now,
        sleep: async (ms) => {
          slept.push(ms);
          now += ms;
        },
        maxInlineWaitMs: 500,
      },
    );
    await pacer.take('defender');
    await pacer.take('defender');
    now = 700; // the first use leaves the (2%-widened) window at 1020: 320 ms, waited inline
    await pacer.take('defender');
    expect(slept).toEqual([320]);
    now = 1100; // the second use (t=0) has left: this one fits; the third (at 1020) then fills the window until 2040
    await pacer.take('defender');
    await expect(pacer.take('defender')).rejects.toMatchObject({ name: 'EnginePaced', api: 'defender', retryAfterMs: 940 });
  });

  it('stamps a call when the shared record lets it through, not when it started waiting for the record', async () => {
    // Writes to one record are chained: under load a call waits its turn. Its stamp must be the time it was let
    // through, or the window would count it as older than it is and admit more calls than the API does.
    let now = 0;
    const memory = new MemorySharedState();
    let release!: () => void;
    const turn = new Promise<void>((resolve) => (release = resolve));
    const queued: SharedState = { update: async (key, change) => (await turn, memory.update(key, change)) };
    const pacer = new Pacer(queued, { ...DEFAULT_API_BUDGETS, defender: [{ max: 2, windowMs: 1000 }] }, { now: () => now });
    const call = pacer.take('defender');
    now = 700; // the record was busy for 700 ms
    release();
    await call;
    const record = await memory.update<BudgetRecord, BudgetRecord | undefined>('pace:defender', (r) => ({ next: r, result: r }));
    expect(record).toEqual([[700]]);
  });

  it('paces nothing for an API whose budget is off', async () => {
    const pacer = new Pacer(new MemorySharedState(), { ...DEFAULT_API_BUDGETS, idprotection: [] }, { sleep: () => Promise.reject(new Error('slept')) });
    for (let i = 0; i < 10; i++) await pacer.take('idprotection');
  });
});
