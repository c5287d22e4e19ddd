import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../shared/azure/ncrontab';
import { ConfigError } from '../../shared/errors';

const next = (expression: string, after: string) => parseSchedule(expression).next(new Date(after))?.toISOString();

describe('NCRONTAB schedules', () => {
  it.each([
    ['0 */5 * * * *', '2026-11-28T10:03:20Z', '2026-11-28T10:05:00.000Z'],
    ['0 0/5 * * * *', '2026-11-28T10:05:00Z', '2026-11-28T10:10:00.000Z'],
    ['*/10 * * * * *', '2026-11-28T10:00:59Z', '2026-11-28T10:01:00.000Z'],
    ['30 15 9 * * *', '2026-11-28T10:00:00Z', '2026-11-29T09:15:30.000Z'],
    ['0 0 0 1 * *', '2026-11-28T10:00:00Z', '2026-12-01T00:00:00.000Z'],
    ['0 0 12 * * mon-fri', '2026-11-28T10:00:00Z', '2026-11-30T12:00:00.000Z'], // the 28th is a Saturday
    ['0 0 12 * * 0', '2026-11-28T10:00:00Z', '2026-11-29T12:00:00.000Z'],
    ['0 0 12 * * 7', '2026-11-28T10:00:00Z', '2026-11-29T12:00:00.000Z'],
    ['0 0 0 29 feb *', '2026-11-28T10:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['0 0 9 13 * fri', '2026-11-28T10:00:00Z', '2027-08-13T09:00:00.000Z'], // both day fields must match
    ['0 0 1,13 * * *', '2026-11-28T10:00:00Z', '2026-11-28T13:00:00.000Z'],
    ['0 0 0 31 dec *', '2026-12-31T00:00:00Z', '2027-12-31T00:00:00.000Z'],
  ])('%s after %s is %s', (expression, after, expected) => {
    expect(next(expression, after)).toBe(expected);
  });

  it('returns nothing for a date that never comes', () => {
    expect(next('0 0 0 30 feb *', '2026-11-28T10:00:00Z')).toBeUndefined();
  });

  it.each([
    ['0 */5 * * *', 'must have six fields'],
    ['60 * * * * *', 'second field "60": expected 0-59, got "60"'],
    ['0 0 25 * * *', 'hour field "25": expected 0-23'],
    ['0 0 0 * foo *', 'month field "foo": expected 1-12 or a name, got "foo"'],
    ['0 0 0 * * 1-8', 'day-of-week field "1-8": expected 0-7 or a name, got "8"'],
    ['0 */0 * * * *', 'step must be a positive number, got "0"'],
    ['0 0 10-2 * * *', 'range 10-2 runs backwards'],
    ['0 0 0 1/2/3 * *', 'cannot read "1/2/3"'],
  ])('rejects %s, saying why', (expression, message) => {
    expect(() => parseSchedule(expression)).toThrow(ConfigError);
    expect(() => parseSchedule(expression)).toThrow(message);
  });
});
