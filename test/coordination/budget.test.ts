import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUCKETS_PER_WINDOW,
  bucketMsFor,
  parseBudgets,
  release,
  restamp,
  spend,
  turnAt,
  type Budget,
  type BudgetRecord,
} from '../../shared/coordination/budget';

/** The record after uses granted at each of `times`, in order. */
function usedAt(budgets: readonly Budget[], times: number[]): BudgetRecord | undefined {
  let record: BudgetRecord | undefined;
  for (const now of times) {
    const { next, result } = spend(record, budgets, now);
    expect(result).toEqual({ granted: true });
    record = next;
  }
  return record;
}

/** The plain definition: how many of `stamps` fall in the window of `windowMs` that ends at `end`. */
const inWindow = (stamps: readonly number[], end: number, windowMs: number): number => stamps.filter((at) => at > end - windowMs && at <= end).length;

describe('sliding-window budgets', () => {
  it('say when the fullest of several windows frees up: its oldest uses leave once the last millisecond of their bucket has', () => {
    const budgets = parseBudgets('2/1s,3/10s'); // buckets of 17 ms and of 167 ms
    let record: BudgetRecord | undefined;
    const answers = [0, 100, 200, 1200, 1300].map((now) => {
      const { next, result } = spend(record, budgets, now);
      record = next;
      return result;
    });
    // 0 lies in [0, 17): it counts until 16 + 1000. Then 0 and 100 both lie in [0, 167): they count until 166 + 10,000.
    expect(answers).toEqual([{ granted: true }, { granted: true }, { granted: false, retryAt: 1016 }, { granted: true }, { granted: false, retryAt: 10_166 }]);
    expect(() => parseBudgets('100 per minute')).toThrow(/not a budget such as 100\/60s/);
  });

  it('refuse uses that could never fit, however long one waits: a cap of 0, or more than the share left to others', () => {
    expect(spend(undefined, [{ max: 0, windowMs: 3_600_000 }], 5).result).toEqual({ granted: false, retryAt: 3_600_005 });
    expect(spend(undefined, [{ max: 4, windowMs: 1000 }], 0, 3, 0.5).result).toEqual({ granted: false, retryAt: 1000 });
    expect(spend(undefined, [{ max: 4, windowMs: 1000 }], 0, 2, 0.5).result).toEqual({ granted: true });
  });

  it('keep a bounded record at any rate: Graph writes at 3,000 per 2.5 minutes, asked for faster than that for 10 minutes', () => {
    const budgets = [{ max: 3000, windowMs: 150_000 }];
    let record: BudgetRecord | undefined;
    const granted: number[] = [];
    let largest = 0;
    for (let now = 0; now < 600_000; now += 37) {
      const { next, result } = spend(record, budgets, now);
      record = next;
      if (result.granted) granted.push(now);
      largest = Math.max(largest, JSON.stringify(record).length);
    }
    for (const end of granted) expect(inWindow(granted, end, 150_000)).toBeLessThanOrEqual(3000);
    // The API would take 3,000 in every 150 s; a bucket's 2.5 s more per window is what the record gives up.
    expect(granted.length).toBeGreaterThan((3000 * 600) / (150 + 2.5 + 0.037) - 3000 / BUCKETS_PER_WINDOW);
    expect(record?.[0]?.buckets.length).toBeLessThanOrEqual(BUCKETS_PER_WINDOW + 1);
    // A log of stamps would be 3,000 numbers of 5 to 6 digits here; a Table storage string property holds 32K characters.
    expect(largest).toBeLessThan(2500);
  });

  it('read a record an engine before bucketed records left, as the stamps it lists', () => {
    const budgets = [{ max: 3, windowMs: 1000 }];
    const legacy = [[0, 300, 400]] as unknown as BudgetRecord;
    expect(spend(legacy, budgets, 700).result).toEqual({ granted: false, retryAt: 1016 });
    expect(spend(release(legacy, 300, 1), budgets, 700).result).toEqual({ granted: true });
  });

  it('count no use earlier than it was when the window changes (settings changed between two instances)', () => {
    const record = usedAt([{ max: 10, windowMs: 1000 }], [0, 16, 17, 500]); // buckets of 17 ms: 0, 0, 17, 493
    const wider = [{ max: 4, windowMs: 6000 }]; // buckets of 100 ms: each old bucket moves to the one holding its last ms
    const { next, result } = spend(record, wider, 600);
    expect(result).toEqual({ granted: false, retryAt: 99 + 6000 });
    expect(next).toEqual([
      {
        bucketMs: 100,
        buckets: [
          { start: 0, uses: 3 },
          { start: 500, uses: 1 },
        ],
      },
    ]);
  });
});

describe('reserved uses', () => {
  const budgets = [{ max: 3, windowMs: 1000 }];
  it('move to when the call really goes out, if the window has room then', () => {
    const { next, result } = restamp(usedAt(budgets, [0, 300, 400]), budgets, 0, 700);
    expect(result).toEqual({ granted: true });
    expect(next).toEqual([
      {
        bucketMs: 17,
        buckets: [
          { start: 289, uses: 1 },
          { start: 391, uses: 1 },
          { start: 697, uses: 1 },
        ],
      },
    ]);
  });

  it('keep the reservation and wait when the window is full at call time', () => {
    const record = usedAt(budgets, [100, 300, 400]);
    expect(restamp(record, budgets, 50, 700)).toEqual({ next: record, result: { granted: false, retryAt: 85 + 16 + 1000 } });
  });

  it('go back when abandoned, leaving the other uses of their bucket', () => {
    const record = usedAt(budgets, [0, 5, 400]); // 0 and 5 share the bucket [0, 17)
    expect(release(record, 5, 1)).toEqual([
      {
        bucketMs: 17,
        buckets: [
          { start: 0, uses: 1 },
          { start: 391, uses: 1 },
        ],
      },
    ]);
    expect(release(record, 5, 5)).toEqual([{ bucketMs: 17, buckets: [{ start: 391, uses: 1 }] }]);
  });
});

/**
 * The bucketed record against the plain definition — at most `max` uses in any `windowMs` — over random sequences of
 * what the pacer does: reserve units (some keeping half the budget free), make reserved calls late (restamp), abandon
 * reservations (release), as time goes by. The model keeps every use's exact time.
 */
describe('the bucketed record, against the plain definition', () => {
  const step = fc.record({
    gap: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 40 }), weight: 4 }, { arbitrary: fc.integer({ min: 0, max: 2500 }), weight: 1 }),
    op: fc.constantFrom('reserve', 'reserve', 'reserve', 'call', 'release'),
    units: fc.integer({ min: 1, max: 3 }),
    keep: fc.constantFrom(0, 0, 0.5),
    pick: fc.nat(),
  });
  // Windows under 60 ms have 1-ms buckets (exact); longer ones coarser buckets.
  const budget = fc.record({ max: fc.integer({ min: 1, max: 8 }), windowMs: fc.oneof(fc.integer({ min: 1, max: 59 }), fc.integer({ min: 60, max: 2000 })) });

  it('never admits more uses in any window than the API counts, refuses only what one more bucket would, and stays small', () => {
    fc.assert(
      fc.property(fc.array(budget, { minLength: 1, maxLength: 2 }), fc.array(step, { minLength: 1, maxLength: 150 }), (budgets, steps) => {
        let record: BudgetRecord | undefined;
        let now = 0;
        const stamps: number[] = []; // every use held or made, at its exact time
        const reservations: Array<{ at: number; left: number }> = [];
        const drop = (at: number, n: number) => {
          for (let i = 0; i < n; i++) stamps.splice(stamps.indexOf(at), 1);
        };
        for (const { gap, op, units, keep, pick } of steps) {
          now += gap;
          const open = reservations.filter((r) => r.left > 0);
          const reservation = open[pick % Math.max(1, open.length)];
          if (op === 'reserve' || !reservation) {
            const fits = Math.min(units, ...budgets.map((b) => b.max - Math.floor(b.max * keep)));
            const { next, result } = spend(record, budgets, now, fits, keep);
            record = next;
            if (result.granted) {
              for (let i = 0; i < fits; i++) stamps.push(now);
              reservations.push({ at: now, left: fits });
            } else {
              expect(result.retryAt).toBeGreaterThan(now);
              // Only a window one bucket longer than the API's could have been full...
              const wouldOverflow = budgets.some((b) => inWindow(stamps, now, b.windowMs + bucketMsFor(b) - 1) + fits > b.max - Math.floor(b.max * keep));
              expect(wouldOverflow).toBe(true);
              // ...and at retryAt the same uses fit.
              expect(spend(next, budgets, result.retryAt, fits, keep).result).toEqual({ granted: true });
            }
          } else if (op === 'call') {
            const { next, result } = restamp(record, budgets, reservation.at, now);
            record = next;
            if (result.granted) {
              drop(reservation.at, 1);
              stamps.push(now);
              reservation.left--;
            }
          } else {
            record = release(record, reservation.at, reservation.left);
            drop(reservation.at, reservation.left);
            reservation.left = 0;
          }
          for (const b of budgets) for (const end of stamps) expect(inWindow(stamps, end, b.windowMs)).toBeLessThanOrEqual(b.max);
          for (const window of record ?? []) expect(window.buckets.length).toBeLessThanOrEqual(BUCKETS_PER_WINDOW + 1);
        }
      }),
      { seed: 20261128, numRuns: 400 },
    );
  });
});

describe('turns', () => {
  const budget = fc.record({ max: fc.integer({ min: 1, max: 8 }), windowMs: fc.oneof(fc.integer({ min: 1, max: 59 }), fc.integer({ min: 60, max: 2000 })) });

  it('taken in order, each at its time, every turn is granted; none could have been earlier; they never go back in time', () => {
    fc.assert(
      fc.property(
        fc.array(budget, { minLength: 1, maxLength: 2 }),
        fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 30 }),
        (budgets, gaps, wanted) => {
          // Uses spent as they came, then a burst of callers at `now`, each refused or not, given a turn behind the others.
          let record: BudgetRecord | undefined;
          let now = 0;
          for (const gap of gaps) {
            now += gap;
            record = spend(record, budgets, now).next;
          }
          const ahead: Array<{ at: number; units: number }> = [];
          for (const units of wanted) {
            const fits = Math.min(units, ...budgets.map((b) => b.max));
            const at = turnAt(record, budgets, now, ahead, fits);
            const earliest = Math.max(now, ...ahead.map((t) => t.at));
            expect(at).toBeGreaterThanOrEqual(earliest);
            // One millisecond sooner, with the turns ahead taken, the windows had no room.
            if (at > earliest) {
              let before = record;
              for (const t of ahead) before = spend(before, budgets, t.at, t.units).next;
              expect(spend(before, budgets, at - 1, fits).result.granted).toBe(false);
            }
            ahead.push({ at, units: fits });
          }
          for (const turn of ahead) {
            const { next, result } = spend(record, budgets, turn.at, turn.units);
            expect(result).toEqual({ granted: true });
            record = next;
          }
        },
      ),
      { seed: 20261204, numRuns: 300 },
    );
  });
});
