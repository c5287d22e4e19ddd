import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BudgetRecord } from '../../shared/coordination/budget';
import {
  EnginePaced,
  Pacer,
  DEFAULT_API_BUDGETS,
  everyDefenderApi,
  type ApiCosts,
  type PacedApi,
  type Reservation,
  type Turn,
} from '../../shared/coordination/pacer';
import { MemorySharedState, type SharedState } from '../../shared/coordination/sharedState';
import { TableSharedState } from '../../shared/coordination/tableSharedState';
import { openTableLedger, rowKeyFor, SHARED_PARTITION } from '../../shared/ledger/tableLedger';
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

describe('shared state on Table storage', () => {
  it('writes nothing for a change that leaves the record as it was (a refusal, a look): its ETag stays', async () => {
    const ledger = await openTableLedger({ connectionString: azurite.connectionString }, `shared${++tables}`);
    const state = new TableSharedState(ledger.table);
    await increment(state);
    const etag = async () => (await ledger.table.getEntity(SHARED_PARTITION, rowKeyFor('counter'))).etag;
    const before = await etag();
    expect(await state.update<number, number | undefined>('counter', (n) => ({ next: n, result: n }))).toBe(1);
    expect(await etag()).toBe(before);
    await increment(state);
    expect(await etag()).not.toBe(before);
  });
});

describe('shared state on Table storage, one instance', () => {
  it('applies the changes that wait while a swap is under way together: one read and one write for the lot, in order', async () => {
    const ledger = await openTableLedger({ connectionString: azurite.connectionString }, `shared${++tables}`);
    let reads = 0;
    const getEntity = ledger.table.getEntity.bind(ledger.table);
    ledger.table.getEntity = ((...args: Parameters<typeof getEntity>) => (reads++, getEntity(...args))) as typeof getEntity;
    const state = new TableSharedState(ledger.table);
    const order: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => state.update<number[], number>('seen', (seen = []) => (order.push(i), { next: [...seen, i], result: seen.length }))),
    );
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i)); // each saw every change made before it
    expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(reads).toBeLessThanOrEqual(2); // the first alone, the 49 that waited behind it in one swap
    expect(await state.update<number[], number>('seen', (seen = []) => ({ next: seen, result: seen.length }))).toBe(50);
  });

  it('fails only the change that throws; the others in its swap are applied', async () => {
    const ledger = await openTableLedger({ connectionString: azurite.connectionString }, `shared${++tables}`);
    const state = new TableSharedState(ledger.table);
    const calls = [
      increment(state),
      increment(state),
      state.update<number, number>('counter', () => {
        throw new Error('a change that cannot be made');
      }),
      increment(state),
    ];
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([1, 2, 'a change that cannot be made', 3]);
  });
});

describe('the pacer', () => {
  it('reserves an execution’s calls up front; the calls inside draw on it, each stamped when it goes out', async () => {
    let now = 0;
    const state = new MemorySharedState();
    const pacer = new Pacer(state, { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 3, windowMs: 1000 }] }, { now: () => now, maxInlineWaitMs: 0 });
    const reservation = await pacer.reserve({ 'defender-isolate': 3 });
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toBeInstanceOf(EnginePaced); // the budget is held
    now = 200;
    await pacer.within(reservation, async () => {
      await pacer.take('defender-isolate');
      now = 300;
      await pacer.take('defender-isolate');
    });
    const record = await state.update<BudgetRecord, BudgetRecord | undefined>('pace:defender-isolate', (r) => ({ next: r, result: r }));
    // One reserved use left unused at 0; two calls counted when made, in the 17-ms buckets of the 2%-widened window.
    expect(record).toEqual([
      {
        bucketMs: 17,
        buckets: [
          { start: 0, uses: 1 },
          { start: 187, uses: 1 },
          { start: 289, uses: 1 },
        ],
      },
    ]);
  });

  it('paces each Defender API to its own budget, as Defender counts them: isolations spent leave the reads free', async () => {
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...DEFAULT_API_BUDGETS, ...everyDefenderApi([{ max: 2, windowMs: 1000 }]) },
      { now: () => 0, maxInlineWaitMs: 0 },
    );
    await pacer.reserve({ 'defender-machine-actions': 1, 'defender-isolate': 2 });
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ name: 'EnginePaced', api: 'defender-isolate' });
    await expect(pacer.reserve({ 'defender-machine': 2, 'defender-machine-actions': 1, 'defender-unisolate': 2 })).resolves.toBeDefined();
    await expect(pacer.take('defender-machine-actions')).rejects.toMatchObject({ api: 'defender-machine-actions' });
  });

  it("spares a plan's reads only a tenth of a budget (one call per ten windows of a tiny one), and only while half is free", async () => {
    let now = 0;
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...DEFAULT_API_BUDGETS, 'defender-machine': [{ max: 100, windowMs: 60_000 }], idprotection: [{ max: 1, windowMs: 1000 }] },
      { now: () => now, maxInlineWaitMs: 0 },
    );
    const spare = (api: PacedApi) =>
      pacer
        .sparing(() => pacer.take(api))
        .then(
          () => 'read',
          () => 'refused',
        );
    const defender = [];
    for (let i = 0; i < 12; i++) defender.push(await spare('defender-machine'));
    expect(defender.filter((r) => r === 'read')).toHaveLength(10);
    // ID Protection's one call a second: a plan may take one call in ten seconds, never two in a row.
    expect([await spare('idprotection'), await spare('idprotection')]).toEqual(['read', 'refused']);
    now = 5000;
    expect(await spare('idprotection')).toBe('refused');
    now = 10_500;
    expect(await spare('idprotection')).toBe('read');
    // With half of the shared budget spent by containment, a plan reads nothing more.
    now = 120_000;
    await pacer.reserve({ 'defender-machine': 50 });
    expect(await spare('defender-machine')).toBe('refused');
    // Another Defender API's budget is its own: its tenth for a plan is untouched.
    expect(await spare('defender-machines')).toBe('read');
  });

  it('gives back what it reserved from one API when another API’s budget is spent', async () => {
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-machine-actions': [{ max: 3, windowMs: 1000 }], 'graph-writes': [{ max: 1, windowMs: 1000 }] };
    const pacer = new Pacer(new MemorySharedState(), budgets, { now: () => 0, maxInlineWaitMs: 0 });
    await pacer.reserve({ 'graph-writes': 1 });
    await expect(pacer.reserve({ 'defender-machine-actions': 2, 'graph-writes': 1 })).rejects.toBeInstanceOf(EnginePaced);
    await expect(pacer.reserve({ 'defender-machine-actions': 3 })).resolves.toBeDefined(); // the two machine-actions units came back
  });

  it('waits briefly inside the call, and defers a long wait with Retry-After instead of sleeping', async () => {
    let now = 0;
    const slept: number[] = [];
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 2, windowMs: 1000 }] },
      {
        now: () => now,
        sleep: async (ms) => {
          slept.push(ms);
          now += ms;
        },
        maxInlineWaitMs: 500,
      },
    );
    await pacer.take('defender-isolate');
    await pacer.take('defender-isolate');
    // Both uses are counted in the bucket [0, 17) of the 2%-widened window (1020 ms): they leave at 16 + 1020, 336 ms
    // from now, waited inline.
    now = 700;
    await pacer.take('defender-isolate');
    expect(slept).toEqual([336]);
    // The third use (at 1036, in the bucket from 1020) leaves room for this one; together they fill the window until 2056.
    now = 1100;
    await pacer.take('defender-isolate');
    await expect(pacer.take('defender-isolate')).rejects.toMatchObject({ name: 'EnginePaced', api: 'defender-isolate', retryAfterMs: 956 });
  });

  it('stamps a call when the shared record lets it through, not when it started waiting for the record', async () => {
    // Writes to one record are chained: under load a call waits its turn. Its stamp must be the time it was let
    // through, or the window would count it as older than it is and admit more calls than the API does.
    let now = 0;
    const memory = new MemorySharedState();
    let release!: () => void;
    const turn = new Promise<void>((resolve) => (release = resolve));
    const queued: SharedState = { update: async (key, change) => (await turn, memory.update(key, change)) };
    const pacer = new Pacer(queued, { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 2, windowMs: 1000 }] }, { now: () => now });
    const call = pacer.take('defender-isolate');
    now = 700; // the record was busy for 700 ms
    release();
    await call;
    const record = await memory.update<BudgetRecord, BudgetRecord | undefined>('pace:defender-isolate', (r) => ({ next: r, result: r }));
    expect(record).toEqual([{ bucketMs: 17, buckets: [{ start: 697, uses: 1 }] }]); // counted in the bucket holding 700
  });

  it('gives a refused burst turns in order, as the budget frees; a unit free now goes to whoever asks, and a turn missed is given again last', async () => {
    let now = 0;
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 2, windowMs: 1000 }] },
      { now: () => now, maxInlineWaitMs: 0 },
    );
    const turnOf = async (turn?: Turn) => {
      try {
        await pacer.reserve({ 'defender-isolate': 1 }, undefined, turn);
        return 'spent';
      } catch (error) {
        if (!(error instanceof EnginePaced) || !error.turn) throw error;
        return error.turn;
      }
    };
    expect(await turnOf()).toBe('spent');
    expect(await turnOf()).toBe('spent');
    // Both uses leave the 1020-ms widened window after their 17-ms bucket: two turns then, two a window later.
    const turns = [await turnOf(), await turnOf(), await turnOf(), await turnOf()] as Turn[];
    expect(turns.map((t) => t.at)).toEqual([1036, 1036, 2056, 2056]);
    expect(turns[0]).toEqual({ api: 'defender-isolate', at: 1036, units: 1 });
    now = 1036;
    // Two units are free; a caller without a turn takes one (its turn's action may be stuck behind a backlog).
    expect(await turnOf()).toBe('spent');
    expect(await turnOf(turns[0])).toBe('spent');
    // The second turn found its unit taken: it goes to the end of the line, behind the turns given before.
    expect(await turnOf(turns[1])).toMatchObject({ at: 3076 });
    now = 2056;
    expect(await turnOf(turns[3])).toBe('spent');
    expect(await turnOf(turns[2])).toBe('spent');
  });

  it('keeps an action back ahead of its turn in the line until its execution ends: its unit is not spent yet, so it is not given again', async () => {
    let now = 0;
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 1000 }] };
    const pacer = new Pacer(new MemorySharedState(), budgets, { now: () => now, sleep: async (ms) => void (now += ms), maxInlineWaitMs: 0 });
    await pacer.reserve({ 'defender-isolate': 1 });
    const { turn } = (await pacer.reserve({ 'defender-isolate': 1 }).catch((error: EnginePaced) => error)) as EnginePaced;
    expect(turn).toMatchObject({ at: 1036 });
    now = 500;
    const reservation = await pacer.reserve({ 'defender-isolate': 1 }, undefined, turn);
    // Its reads go on; another action refused meanwhile is given the unit after the one this turn holds.
    now = 600;
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ turn: { at: 2056 } });
    await pacer.within(reservation, () => pacer.take('defender-isolate'));
    await pacer.settle(reservation);
    // Its use is in the record now, and it has left the line: counted once, not twice.
    now = 1100;
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ turn: { at: 3076 } });
  });

  it('spends nothing for an action back ahead of its turn: its call spends when it goes, after waiting for the unit', async () => {
    let now = 0;
    const slept: number[] = [];
    const sleep = async (ms: number) => void (slept.push(ms), (now += ms));
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 1000 }] };
    const pacer = new Pacer(new MemorySharedState(), budgets, { now: () => now, sleep, maxInlineWaitMs: 0 });
    await pacer.reserve({ 'defender-isolate': 1 });
    const { turn } = (await pacer.reserve({ 'defender-isolate': 1 }).catch((error: EnginePaced) => error)) as EnginePaced;
    expect(turn).toEqual({ api: 'defender-isolate', at: 1036, units: 1 });
    now = 500; // back ahead of the turn, as a deferral brings it: its reads go without holding a unit idle
    const reservation = await pacer.reserve({ 'defender-isolate': 1 }, undefined, turn);
    expect(reservation.unused()).toEqual([]); // nothing spent, so nothing to give back
    await pacer.within(reservation, () => pacer.take('defender-isolate'));
    expect(slept).toEqual([536]); // the post waited for the turn's unit
    // Spent, its use is in the record and its turn out of the line: counted once, the next turn is a window on, not two.
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ turn: { at: 2056 } });
    await pacer.settle(reservation); // nothing to give back: a turn's unit is spent when its call goes
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ turn: { at: 3076 } });
  });

  it('reads the line with the record: a turn spent while the read waited for the record counts once, not twice', async () => {
    // Under load a read waits its turn for the record. A line read before that wait still holds the turns spent during
    // it, whose uses the record then counts too: the action behind them was told its unit frees a window later.
    let now = 0;
    const memory = new MemorySharedState();
    let gate: Promise<void> | undefined;
    const state: SharedState = {
      update: async (key, change) => {
        const wait = gate;
        if (wait) await wait;
        return memory.update(key, change);
      },
    };
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 2, windowMs: 1000 }] };
    const pacer = new Pacer(state, budgets, { now: () => now, sleep: async (ms) => void (now += ms), maxInlineWaitMs: 100 });
    await pacer.reserve({ 'defender-isolate': 1 });
    now = 500;
    await pacer.reserve({ 'defender-isolate': 1 });
    const refused = async () => ((await pacer.reserve({ 'defender-isolate': 1 }).catch((error: EnginePaced) => error)) as EnginePaced).turn as Turn;
    const first = await refused();
    const second = await refused();
    expect([first.at, second.at]).toEqual([1036, 1529]); // as the uses at 0 and 500 leave the window
    now = 900;
    const firstBack = await pacer.reserve({ 'defender-isolate': 1 }, undefined, first);
    now = 1000;
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    const secondBack = pacer.reserve({ 'defender-isolate': 1 }, undefined, second); // its read waits for the record
    gate = undefined;
    now = 1040;
    await pacer.within(firstBack, () => pacer.take('defender-isolate')); // meanwhile the first spends and leaves the line
    open();
    // The uses at 500 and 1040 fill the window until the second's turn, when the one at 500 leaves it: it keeps its turn.
    expect((await secondBack).turns()).toEqual([second]);
  });

  it('keeps a turn in the line while its action, back after it, waits for the unit: the turns behind it count it', async () => {
    let now = 0;
    let waiting = false;
    let behind: Promise<unknown> | undefined;
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 2, windowMs: 1000 }] },
      {
        now: () => now,
        // While the first waits, the action with the next turn comes back ahead of it.
        sleep: async (ms) => {
          if (waiting) behind ??= pacer.reserve({ 'defender-isolate': 1 }, undefined, second).catch((error: unknown) => error);
          now += ms;
        },
        maxInlineWaitMs: 600,
      },
    );
    await pacer.reserve({ 'defender-isolate': 1 });
    now = 400;
    await pacer.reserve({ 'defender-isolate': 1 });
    const refused = async () => ((await pacer.reserve({ 'defender-isolate': 1 }).catch((error: EnginePaced) => error)) as EnginePaced).turn as Turn;
    const first = await refused();
    const second = await refused();
    expect([first.at, second.at]).toEqual([1036, 1427]);
    now = 1036;
    await pacer.reserve({ 'defender-isolate': 1 }); // a unit free now goes to whoever asks
    now = 1040;
    waiting = true;
    await pacer.reserve({ 'defender-isolate': 1 }, undefined, first); // back after its turn: waits inline for the next unit
    // That unit (free at 1427) is the first's: the second is sent to the one after it, rather than wait a window inline.
    expect(await behind).toMatchObject({ name: 'EnginePaced', turn: { at: 2056 } });
  });

  it("waits at most the committed wait in all for a turn's unit, however often another instance takes it first", async () => {
    let now = 0;
    const slept: number[] = [];
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 1000 }] };
    const state = new MemorySharedState();
    const other = new Pacer(state, budgets, { now: () => now, maxInlineWaitMs: 0 });
    let taken = 0;
    // Each time the unit frees, another instance's caller gets it first (twenty times, then no more).
    const sleep = async (ms: number) => {
      slept.push(ms);
      now += ms;
      if (
        taken < 20 &&
        (await other.reserve({ 'defender-isolate': 1 }).then(
          () => true,
          () => false,
        ))
      )
        taken++;
    };
    const pacer = new Pacer(state, budgets, { now: () => now, sleep, maxInlineWaitMs: 0, committedWaitMs: 5000 });
    await other.reserve({ 'defender-isolate': 1 });
    now = 500;
    const reservation = await pacer.reserve({ 'defender-isolate': 1 }, undefined, { api: 'defender-isolate', at: 1036, units: 1 });
    const refused = await pacer.within(reservation, () => pacer.take('defender-isolate')).catch((error: unknown) => error);
    // Past the committed wait, the execution is deferred with a turn, not kept waiting (and holding its claim) for good.
    expect(refused).toBeInstanceOf(EnginePaced);
    expect((refused as EnginePaced).turn).toMatchObject({ api: 'defender-isolate' });
    expect(slept.reduce((total, ms) => total + ms, 0)).toBeLessThanOrEqual(5000);
  });

  it('gives a turn whose unit another instance took, at its call, a new turn that does not count the one it missed', async () => {
    let now = 0;
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 2, windowMs: 1000 }] };
    const state = new MemorySharedState();
    const other = new Pacer(state, budgets, { now: () => now, maxInlineWaitMs: 0 });
    // While the call sleeps for the turn's unit, another instance takes it as it frees.
    const sleep = async (ms: number) => void ((now += ms), await other.reserve({ 'defender-isolate': 1 }));
    const pacer = new Pacer(state, budgets, { now: () => now, sleep, maxInlineWaitMs: 0, committedWaitMs: 400 });
    await pacer.reserve({ 'defender-isolate': 1 });
    now = 500;
    await pacer.reserve({ 'defender-isolate': 1 });
    now = 600;
    const { turn } = (await pacer.reserve({ 'defender-isolate': 1 }).catch((error: EnginePaced) => error)) as EnginePaced;
    expect(turn).toMatchObject({ at: 1036 });
    now = 700;
    const reservation = await pacer.reserve({ 'defender-isolate': 1 }, undefined, turn);
    const refused = await pacer.within(reservation, () => pacer.take('defender-isolate')).catch((error: unknown) => error);
    // Refused at 1036: the use made at 500 leaves the window at 1529, and that unit is its new turn's.
    expect(refused).toMatchObject({ name: 'EnginePaced', turn: { at: 1529 } });
    await pacer.settle(reservation);
    // The new turn is in the line: the next one refused comes after it.
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ turn: { at: 2056 } });
  });

  it("gives back nothing of a turn's units when another API refuses the execution: they were never spent", async () => {
    let now = 0;
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 2, windowMs: 1000 }], 'defender-unisolate': [{ max: 1, windowMs: 1000 }] };
    const pacer = new Pacer(new MemorySharedState(), budgets, { now: () => now, maxInlineWaitMs: 0 });
    await pacer.reserve({ 'defender-isolate': 1, 'defender-unisolate': 1 });
    now = 5;
    const turn: Turn = { api: 'defender-isolate', at: 10, units: 1 };
    await expect(pacer.reserve({ 'defender-isolate': 1, 'defender-unisolate': 1 }, undefined, turn)).rejects.toBeInstanceOf(EnginePaced);
    // One isolate use is counted, so one more fits the window, not two.
    await pacer.reserve({ 'defender-isolate': 1 });
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toBeInstanceOf(EnginePaced);
  });

  it('gives actions queued while their budget has room a turn now, with no shared read, counting them until they spend', async () => {
    let reads = 0;
    const memory = new MemorySharedState();
    const counted: SharedState = { update: (key, change) => (reads++, memory.update(key, change)) };
    const pacer = new Pacer(counted, { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 4, windowMs: 1000 }] }, { now: () => 0, maxInlineWaitMs: 0 });
    // Three fit under three quarters of four: queued at once, unread. The fourth would press the budget: its turn is
    // read, and with room for it, it is now too; the fifth waits for the first unit to free.
    const turns = [];
    for (let i = 0; i < 5; i++) turns.push(await pacer.turnFor({ 'defender-isolate': 1 }));
    expect(turns.map((t) => t?.at)).toEqual([0, 0, 0, 0, 1036]);
    expect(reads).toBe(2);
    // Each action spends on its turn as it reaches the worker, and leaves the line.
    for (const turn of turns.slice(0, 4)) await pacer.reserve({ 'defender-isolate': 1 }, undefined, turn);
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ turn: { at: 1036 } }); // with the fifth
    expect(await pacer.turnFor({ 'graph-writes': 1 })).toEqual({ api: 'graph-writes', at: 0, units: 1 });
  });

  it('refuses as before, without a turn, when the budget cannot be read for one; and queues at once', async () => {
    const memory = new MemorySharedState();
    let updates = 0;
    const flaky: SharedState = { update: (key, change) => (++updates === 3 ? Promise.reject(new Error('table unavailable')) : memory.update(key, change)) };
    const pacer = new Pacer(flaky, { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 1000 }] }, { now: () => 0, maxInlineWaitMs: 0 });
    await pacer.reserve({ 'defender-isolate': 1 }); // update 1
    // Update 2 refuses; update 3, the turn's read, fails: the refusal stands, as a plain deferral.
    const refused = await pacer.reserve({ 'defender-isolate': 1 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(EnginePaced);
    expect((refused as EnginePaced).turn).toBeUndefined();
    updates = 2;
    expect(await pacer.turnFor({ 'defender-isolate': 1 })).toBeUndefined(); // pressed, but its read fails: at once
    expect(await pacer.turnFor({ 'defender-isolate': 1 })).toMatchObject({ api: 'defender-isolate', at: 1036 });
  });

  it('defers again, keeping its place, an action back ahead of a turn whose unit the record says frees later', async () => {
    let now = 0;
    const state = new MemorySharedState();
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 1000 }] };
    const pacer = new Pacer(state, budgets, { now: () => now, maxInlineWaitMs: 0 });
    await pacer.reserve({ 'defender-isolate': 1 });
    const { turn } = (await pacer.reserve({ 'defender-isolate': 1 }).catch((error: EnginePaced) => error)) as EnginePaced;
    expect(turn).toMatchObject({ at: 1036 });
    // Another instance takes the unit as it frees: this turn's unit now frees a window later.
    await new Pacer(state, budgets, { now: () => 1036, maxInlineWaitMs: 0 }).reserve({ 'defender-isolate': 1 });
    now = 600;
    const retimed = await pacer.reserve({ 'defender-isolate': 1 }, undefined, turn).catch((error: unknown) => error);
    expect(retimed).toMatchObject({ name: 'EnginePaced', turn: { api: 'defender-isolate', at: 2056, units: 1 }, retryAfterMs: 1456 });
    // It kept its place: a turn given now comes after it.
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ turn: { at: 3076 } });
  });

  it('holds an action back ahead of a turn another instance gave: this line knows none of the turns ahead of it', async () => {
    let now = 0;
    const state = new MemorySharedState();
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 1000 }] };
    const giver = new Pacer(state, budgets, { now: () => now, maxInlineWaitMs: 0 });
    await giver.reserve({ 'defender-isolate': 1 });
    const { turn } = (await giver.reserve({ 'defender-isolate': 1 }).catch((error: EnginePaced) => error)) as EnginePaced;
    // A third instance takes the unit as it frees (stamped at 1036 on its clock): by the record, this turn's is a window on.
    await new Pacer(state, budgets, { now: () => 1036, maxInlineWaitMs: 0 }).reserve({ 'defender-isolate': 1 });
    // Its action is delivered to another instance, ahead of its turn: not re-timed there, it waits for a unit in its call.
    now = 600;
    const other = new Pacer(state, budgets, { now: () => now, maxInlineWaitMs: 0 });
    expect((await other.reserve({ 'defender-isolate': 1 }, undefined, turn)).turns()).toEqual([turn]);
  });

  it('counts a re-timed action once, however often an old copy of its turn comes back ahead of it', async () => {
    let now = 0;
    const state = new MemorySharedState();
    const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 2, windowMs: 1000 }] };
    const pacer = new Pacer(state, budgets, { now: () => now, maxInlineWaitMs: 0 });
    await pacer.reserve({ 'defender-isolate': 2 });
    const { turn } = (await pacer.reserve({ 'defender-isolate': 1 }).catch((error: EnginePaced) => error)) as EnginePaced;
    expect(turn).toMatchObject({ at: 1036 });
    // Another instance takes both units as they free: this turn's unit now frees a window later.
    await new Pacer(state, budgets, { now: () => 1036, maxInlineWaitMs: 0 }).reserve({ 'defender-isolate': 2 });
    now = 600;
    await expect(pacer.reserve({ 'defender-isolate': 1 }, undefined, turn)).rejects.toMatchObject({ turn: { at: 2056 } });
    // The message that carried the old turn is delivered again (at least once), ahead of it too: that turn is no longer
    // in this line, so it holds (its call waits for a unit; the ledger lets one copy of the action run).
    now = 650;
    expect((await pacer.reserve({ 'defender-isolate': 1 }, undefined, turn)).turns()).toEqual([turn]);
    // Still one action for one of the two units at 2056: the other is for the next action refused.
    await expect(pacer.reserve({ 'defender-isolate': 1 })).rejects.toMatchObject({ turn: { at: 2056 } });
  });

  it('paces nothing for an API whose budget is off', async () => {
    const pacer = new Pacer(new MemorySharedState(), { ...DEFAULT_API_BUDGETS, idprotection: [] }, { sleep: () => Promise.reject(new Error('slept')) });
    for (let i = 0; i < 10; i++) await pacer.take('idprotection');
  });

  it('lets no more calls through than a window allows, two instances giving turns for one budget, whatever the order', async () => {
    const apis = ['defender-isolate', 'defender-unisolate'] as const;
    const step = fc.record({
      op: fc.integer({ min: 0, max: 5 }),
      instance: fc.integer({ min: 0, max: 1 }),
      both: fc.boolean(),
      ms: fc.integer({ min: 0, max: 1500 }),
      pick: fc.nat(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 200, max: 2000 }),
        fc.integer({ min: 0, max: 1500 }),
        fc.array(step, { maxLength: 120 }),
        async (max, windowMs, inline, steps) => {
          let now = 10_000;
          const budgets = { ...DEFAULT_API_BUDGETS, ...Object.fromEntries(apis.map((api) => [api, [{ max, windowMs }]])) };
          const state = new MemorySharedState();
          const options = { now: () => now, sleep: async (ms: number) => void (now += ms), maxInlineWaitMs: inline, committedWaitMs: 3000 };
          const instances = [new Pacer(state, budgets, options), new Pacer(state, budgets, options)];
          const calls = new Map<PacedApi, number[]>(apis.map((api) => [api, []]));
          const turns: Turn[] = [];
          const running: Array<{ pacer: Pacer; reservation: Reservation; costs: ApiCosts; called: boolean }> = [];
          const refused = (error: unknown) => {
            if (!(error instanceof EnginePaced)) throw error;
            if (error.turn) turns.push(error.turn);
          };
          for (const { op, instance, both, ms, pick } of steps) {
            const pacer = instances[instance] as Pacer;
            const costs: ApiCosts = both ? { 'defender-isolate': 1, 'defender-unisolate': 1 } : { 'defender-isolate': 1 };
            if (op <= 1) {
              // An execution starts, back on a turn either instance gave (or none), as deliveries land anywhere.
              const turn = op === 1 && turns.length > 0 ? turns.splice(pick % turns.length, 1)[0] : undefined;
              await pacer.reserve(costs, undefined, turn).then((reservation) => running.push({ pacer, reservation, costs, called: false }), refused);
            } else if (op === 2 && running.length > 0) {
              const execution = running[pick % running.length] as (typeof running)[number];
              if (execution.called) continue;
              execution.called = true;
              for (const api of Object.keys(execution.costs) as PacedApi[])
                await execution.pacer.within(execution.reservation, () => execution.pacer.take(api)).then(() => calls.get(api)?.push(now), refused);
            } else if (op === 3 && running.length > 0) {
              const [execution] = running.splice(pick % running.length, 1);
              await execution?.pacer.settle(execution.reservation);
            } else if (op === 4) {
              now += ms;
            } else {
              const turn = await pacer.turnFor(costs);
              if (turn) turns.push(turn);
            }
          }
          for (const made of calls.values()) for (const at of made) expect(made.filter((t) => t >= at && t < at + windowMs).length).toBeLessThanOrEqual(max);
        },
      ),
      { seed: 20261205, numRuns: 1500 },
    );
  });

  it('lets no more calls through than a window allows, turns delivered twice, at once on both instances, early or late', async () => {
    const step = fc.record({
      op: fc.integer({ min: 0, max: 7 }),
      instance: fc.integer({ min: 0, max: 1 }),
      ms: fc.integer({ min: 0, max: 1500 }),
      pick: fc.nat(),
      other: fc.nat(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 200, max: 2000 }),
        fc.integer({ min: 0, max: 300 }),
        fc.array(step, { minLength: 20, maxLength: 100 }),
        async (max, windowMs, inline, steps) => {
          let now = 10_000;
          const budgets = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max, windowMs }] };
          const state = new MemorySharedState();
          // Sleepers wake in order, and only when nothing else can run: calls made at once see one clock.
          const sleepers: Array<{ at: number; wake: () => void }> = [];
          const sleep = (ms: number) => new Promise<void>((wake) => void sleepers.push({ at: now + ms, wake }));
          const untilDone = async (work: Promise<void>) => {
            let done = false;
            void work.then(() => (done = true));
            for (;;) {
              for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
              if (done) return work;
              sleepers.sort((a, b) => a.at - b.at);
              const next = sleepers.shift() as (typeof sleepers)[number];
              now = Math.max(now, next.at);
              next.wake();
            }
          };
          const options = { now: () => now, sleep, maxInlineWaitMs: inline, committedWaitMs: 3000 };
          const instances = [new Pacer(state, budgets, options), new Pacer(state, budgets, options)];
          const calls: number[] = [];
          const turns: Turn[] = [];
          const running: Array<{ pacer: Pacer; reservation: Reservation; called: boolean }> = [];
          const refused = (error: unknown) => {
            if (!(error instanceof EnginePaced)) throw error;
            if (error.turn) turns.push(error.turn);
          };
          const start = (pacer: Pacer, turn?: Turn) =>
            pacer.reserve({ 'defender-isolate': 1 }, undefined, turn).then((reservation) => void running.push({ pacer, reservation, called: false }), refused);
          const call = async (execution: (typeof running)[number]) => {
            if (execution.called) return;
            execution.called = true;
            await execution.pacer.within(execution.reservation, () => execution.pacer.take('defender-isolate')).then(() => void calls.push(now), refused);
          };
          const act = async ({ op, instance, ms, pick, other }: (typeof steps)[number]) => {
            const pacer = instances[instance] as Pacer;
            const turn = turns[pick % Math.max(1, turns.length)];
            if (op === 0) await start(pacer);
            // Back on a turn, ahead of it or after it.
            else if (op === 1 && turn) await start(pacer, turns.splice(pick % turns.length, 1)[0]);
            // One message delivered twice at once, on both instances or twice on one; it may come again later.
            else if (op === 2 && turn) await Promise.all([start(pacer, turn), start(instances[other % 2] as Pacer, turn)]);
            else if (op === 3 && running.length > 0) await Promise.all([call(running[pick % running.length]!), call(running[other % running.length]!)]);
            else if (op === 4 && running.length > 0) {
              const [execution] = running.splice(pick % running.length, 1);
              await execution?.pacer.settle(execution.reservation);
            } else if (op === 5) now += ms;
            else if (op === 6) {
              const given = await pacer.turnFor({ 'defender-isolate': 1 });
              if (given) turns.push(given);
            } else if (op === 7 && turn) now = Math.max(now, turn.at - (ms % 3) * (windowMs / 2)); // to a turn, or a little before it
          };
          for (const one of steps) await untilDone(act(one));
          for (const at of calls) expect(calls.filter((t) => t >= at && t < at + windowMs).length).toBeLessThanOrEqual(max);
        },
      ),
      { seed: 20261206, numRuns: 400 },
    );
  });
});
