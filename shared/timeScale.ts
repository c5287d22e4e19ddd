/**
 * RESPONDER_TIME_SCALE: for drills and benchmarks against the sandbox tenant, every duration the engine waits or counts
 * by — API budgets' windows, leases, follow-ups, retries, deferrals, cache lifetimes, re-evaluation delays — divided
 * by one factor, so an hour of an outbreak plays out in minutes with every ratio between them kept. Durations are
 * found by name: each part's timings name them `…Ms` (a number, a list, or a record of them). 1 in production.
 */
export function compressed<T>(timings: T, scale: number): T {
  if (scale === 1) return timings;
  return compress(timings, scale, false) as T;
}

function compress(value: unknown, scale: number, isDuration: boolean): unknown {
  if (typeof value === 'number') return isDuration ? value / scale : value;
  if (Array.isArray(value)) return value.map((item) => compress(item, scale, isDuration));
  if (value === null || typeof value !== 'object') return value;
  // Everything under a name ending in Ms is a duration (a schedule per reason, say).
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, compress(item, scale, isDuration || key.endsWith('Ms'))]));
}
