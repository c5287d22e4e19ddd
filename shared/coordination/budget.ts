/**
 * Sliding-window budgets, as the APIs count them: at most `max` uses in any `windowMs`. The record counts recent uses
 * per bucket of time (a window is cut in BUCKETS_PER_WINDOW buckets), so its size stays bounded whatever the rate; a
 * bucket counts as inside a window while any part of it is, so the record never admits more uses than the API counts.
 * A use is granted only if every window has room, and a refusal says when the oldest buckets leave the fullest window.
 * Pure: the caller stores the record (SharedState).
 */
export interface Budget {
  max: number;
  windowMs: number;
}

/**
 * How many buckets a window is cut in. A refused call waits at most one bucket (a sixtieth of the window) longer than
 * the API's own count would make it, and a record holds at most BUCKETS_PER_WINDOW + 1 buckets per window.
 */
export const BUCKETS_PER_WINDOW = 60;

/** The uses counted in one window: per bucket of `bucketMs`, oldest first. */
export interface WindowCounts {
  bucketMs: number;
  /** `start` is a multiple of bucketMs (epoch ms); a bucket with no use is not kept. */
  buckets: Array<{ start: number; uses: number }>;
}

/** One count per budget, in the order the budgets are given. */
export type BudgetRecord = WindowCounts[];

/** What an engine before bucketed records stored per window: the epoch-ms stamp of every use. Read as 1-ms buckets. */
type StampLog = number[];

export type BudgetAnswer = { granted: true } | { granted: false; retryAt: number };

/**
 * Spend `units` uses now, in every window, or none: all or nothing. With `keep`, a use is granted only if that share
 * of each window's budget stays free for others after it. Units that could never fit a budget (a cap of 0) are
 * refused, and asked to come back a window later.
 */
export function spend(
  record: BudgetRecord | undefined,
  budgets: readonly Budget[],
  now: number,
  units = 1,
  keep = 0,
): { next: BudgetRecord; result: BudgetAnswer } {
  const windows = counted(record, budgets, now);
  let retryAt = 0;
  budgets.forEach((budget, i) => {
    const window = windows[i] as WindowCounts;
    const allowed = budget.max - Math.floor(budget.max * keep);
    if (units > allowed) {
      retryAt = Math.max(retryAt, now + budget.windowMs);
      return;
    }
    let mustLeave = usesIn(window) + units - allowed; // this many of the oldest uses must age out first
    for (const bucket of window.buckets) {
      if (mustLeave <= 0) break;
      mustLeave -= bucket.uses;
      retryAt = Math.max(retryAt, leavesAt(bucket, window, budget));
    }
  });
  if (retryAt > 0) return { next: windows, result: { granted: false, retryAt } };
  return { next: windows.map((window) => withUses(window, now, units)), result: { granted: true } };
}

/**
 * A reserved use happens now: move it from when it was reserved to now, if the windows have room now; else keep the
 * reservation and say when to try again. So the record counts calls when they really went out, and a reserved call made
 * late cannot push a window past its budget.
 */
export function restamp(
  record: BudgetRecord | undefined,
  budgets: readonly Budget[],
  reservedAt: number,
  now: number,
): { next: BudgetRecord; result: BudgetAnswer } {
  const windows = counted(record, budgets, now);
  const moved = spend(
    windows.map((window) => withUses(window, reservedAt, -1)),
    budgets,
    now,
  );
  return moved.result.granted ? moved : { next: windows, result: moved.result };
}

/**
 * When a caller refused now can spend `units`, if every turn `ahead` of it (given out earlier, each a use to come) is
 * taken on time: the earliest moment, no sooner than now nor than the last turn ahead, at which every window has room
 * with those uses counted. A prediction for the caller to come back at, not a use: the record is not changed.
 */
export function turnAt(
  record: BudgetRecord | undefined,
  budgets: readonly Budget[],
  now: number,
  ahead: ReadonlyArray<{ at: number; units: number }>,
  units = 1,
): number {
  let windows = counted(record, budgets, now);
  for (const turn of ahead) windows = windows.map((window) => withUses(window, turn.at, turn.units));
  let at = Math.max(now, ...ahead.map((turn) => turn.at));
  // Each refusal names a later moment (a bucket leaving a window); a use larger than a budget never fits, so stop.
  for (let tries = 0; tries < MAX_TURN_STEPS; tries++) {
    const check = spend(windows, budgets, at, units);
    if (check.result.granted || check.result.retryAt <= at) return at;
    at = check.result.retryAt;
  }
  return at;
}

/** Refusals turnAt follows at most: a window's buckets, for each budget, many times over. */
const MAX_TURN_STEPS = 10_000;

/** Give back `units` uses counted at `reservedAt` that were never made (a reservation abandoned). */
export function release(record: BudgetRecord | undefined, reservedAt: number, units: number): BudgetRecord {
  return (record ?? []).map((stored) => withUses(asCounts(stored), reservedAt, -units));
}

/** `100/60s,1500/1h`: budgets as written in settings. */
export function parseBudgets(text: string): Budget[] {
  return text.split(/[,+]/).map((part) => {
    const match = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(part);
    if (!match) throw new Error(`${JSON.stringify(part.trim())} is not a budget such as 100/60s or 1500/1h`);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[3] as 'ms' | 's' | 'm' | 'h'];
    const budget = { max: Number(match[1]), windowMs: Number(match[2]) * unit };
    if (budget.max < 1 || budget.windowMs < 1) throw new Error(`${JSON.stringify(part.trim())}: both numbers must be positive`);
    return budget;
  });
}

/** The share of its budget the fullest window has used at `now` (0 to 1): how close the API is to being paced. */
export function usage(record: BudgetRecord | undefined, budgets: readonly Budget[], now: number): number {
  const windows = counted(record, budgets, now);
  return Math.max(0, ...budgets.map((budget, i) => usesIn(windows[i] as WindowCounts) / budget.max));
}

/** The bucket width for a budget's window. */
export function bucketMsFor(budget: Budget): number {
  return Math.max(1, Math.ceil(budget.windowMs / BUCKETS_PER_WINDOW));
}

/** Each budget's count at `now`, in its own bucket width, without the buckets that have left its window. */
function counted(record: BudgetRecord | undefined, budgets: readonly Budget[], now: number): BudgetRecord {
  return budgets.map((budget, i) => {
    const window = rebucketed(asCounts(record?.[i]), bucketMsFor(budget));
    return { bucketMs: window.bucketMs, buckets: window.buckets.filter((bucket) => now < leavesAt(bucket, window, budget)) };
  });
}

/** A use counts while it is inside the window; a bucket's uses are counted as late as its last millisecond. */
function leavesAt(bucket: { start: number }, window: WindowCounts, budget: Budget): number {
  return bucket.start + window.bucketMs - 1 + budget.windowMs;
}

function usesIn(window: WindowCounts): number {
  return window.buckets.reduce((total, bucket) => total + bucket.uses, 0);
}

function asCounts(stored: WindowCounts | StampLog | undefined): WindowCounts {
  if (stored === undefined) return { bucketMs: 1, buckets: [] };
  if (!Array.isArray(stored)) return stored;
  // A record an engine before bucketed records wrote, still in Table storage after an upgrade.
  return stored.reduce<WindowCounts>((window, at) => withUses(window, at, 1), { bucketMs: 1, buckets: [] });
}

/**
 * The count in buckets of `bucketMs` (after a change of settings): each old bucket's uses move to the new bucket
 * holding its last millisecond, so no use is counted earlier than it was.
 */
function rebucketed(window: WindowCounts, bucketMs: number): WindowCounts {
  if (window.bucketMs === bucketMs) return window;
  return window.buckets.reduce<WindowCounts>((into, bucket) => withUses(into, bucket.start + window.bucketMs - 1, bucket.uses), {
    bucketMs,
    buckets: [],
  });
}

/**
 * The count with `uses` more (or fewer, when negative) in the bucket holding `at`. Buckets stay in order even when
 * another instance's clock runs behind; a bucket left with no use, or one that has already left the window when uses
 * are given back, is not kept.
 */
function withUses(window: WindowCounts, at: number, uses: number): WindowCounts {
  const start = Math.floor(at / window.bucketMs) * window.bucketMs;
  const buckets = [...window.buckets];
  let i = buckets.length;
  while (i > 0 && (buckets[i - 1] as { start: number }).start > start) i--;
  const same = buckets[i - 1];
  if (same?.start === start) {
    const left = same.uses + uses;
    if (left > 0) buckets[i - 1] = { start, uses: left };
    else buckets.splice(i - 1, 1);
  } else if (uses > 0) {
    buckets.splice(i, 0, { start, uses });
  }
  return { bucketMs: window.bucketMs, buckets };
}
