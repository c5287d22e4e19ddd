/**
 * Sliding-window budgets, as the APIs count them: at most `max` uses in any `windowMs`. The record is the log of
 * recent uses (newest last), one log per window; a use is granted only if every window has room, and a refusal says
 * when the oldest use leaves the fullest window. Pure: the caller stores the record (SharedState).
 */
export interface Budget {
  max: number;
  windowMs: number;
}

/** One log of use times (epoch ms) per budget, in the order the budgets are given. */
export type BudgetRecord = number[][];

export type BudgetAnswer = { granted: true } | { granted: false; retryAt: number };

/**
 * Spend `units` uses now, in every window, or none: all or nothing. `units` must not exceed any budget's max. With
 * `keep`, a use is granted only if that share of each window's budget stays free for others after it.
 */
export function spend(
  record: BudgetRecord | undefined,
  budgets: readonly Budget[],
  now: number,
  units = 1,
  keep = 0,
): { next: BudgetRecord; result: BudgetAnswer } {
  const logs = budgets.map((budget, i) => (record?.[i] ?? []).filter((at) => at > now - budget.windowMs));
  let retryAt = 0;
  budgets.forEach((budget, i) => {
    const log = logs[i] as number[];
    const mustLeave = log.length + units - (budget.max - Math.floor(budget.max * keep)); // this many of the oldest uses must age out first
    if (mustLeave > 0) retryAt = Math.max(retryAt, (log[mustLeave - 1] as number) + budget.windowMs);
  });
  if (retryAt > 0) return { next: logs, result: { granted: false, retryAt } };
  for (const log of logs) for (let i = 0; i < units; i++) log.push(now);
  return { next: logs, result: { granted: true } };
}

/**
 * A reserved use happens now: move its stamp from when it was reserved to now, if the windows have room now; else keep
 * the reservation and say when to try again. So the log holds the times calls really went out, and a reserved call
 * made late cannot push a window past its budget.
 */
export function restamp(
  record: BudgetRecord | undefined,
  budgets: readonly Budget[],
  reservedAt: number,
  now: number,
): { next: BudgetRecord; result: BudgetAnswer } {
  const logs = budgets.map((budget, i) => (record?.[i] ?? []).filter((at) => at > now - budget.windowMs));
  const others = logs.map((log) => {
    const own = log.indexOf(reservedAt);
    return own < 0 ? log : [...log.slice(0, own), ...log.slice(own + 1)];
  });
  const moved = spend(others, budgets, now);
  return moved.result.granted ? moved : { next: logs, result: moved.result };
}

/** Give back `units` uses stamped at `reservedAt` that were never made (a reservation abandoned). */
export function release(record: BudgetRecord | undefined, reservedAt: number, units: number): BudgetRecord {
  return (record ?? []).map((stamps) => {
    const log = [...stamps];
    for (let n = 0; n < units; n++) {
      const own = log.lastIndexOf(reservedAt);
      if (own < 0) break;
      log.splice(own, 1);
    }
    return log;
  });
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
