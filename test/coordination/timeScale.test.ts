import { describe, expect, it } from 'vitest';
import { compressed } from '../../shared/timeScale';

describe('compressed timings (RESPONDER_TIME_SCALE)', () => {
  it('divides every duration named …Ms, in nested objects and lists, and nothing else', () => {
    const timings = {
      leaseMs: 60_000,
      retry: { maxAttempts: 8, baseMs: 10_000, capMs: 900_000 },
      delaysMs: [30_000, 60_000],
      budgets: [{ max: 100, windowMs: 60_000 }],
      label: 'x',
    };
    expect(compressed(timings, 6)).toEqual({
      leaseMs: 10_000,
      retry: { maxAttempts: 8, baseMs: 10_000 / 6, capMs: 150_000 },
      delaysMs: [5000, 10_000],
      budgets: [{ max: 100, windowMs: 10_000 }],
      label: 'x',
    });
    expect(timings.leaseMs).toBe(60_000);
  });

  it('leaves timings as they are at scale 1', () => {
    const timings = { leaseMs: 1 };
    expect(compressed(timings, 1)).toBe(timings);
  });
});
