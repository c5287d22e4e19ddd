import { ConfigError } from '../errors';

/**
 * NCRONTAB, the Functions timer trigger's schedule format: six fields, `{second} {minute} {hour} {day} {month}
 * {day-of-week}`, each a list of `*`, `n`, `a-b`, with an optional `/step`; months and weekdays also by name. Times
 * are UTC (the Functions default). As in NCrontab, a restricted day and day-of-week must both match.
 */
export interface Schedule {
  expression: string;
  /** The first occurrence strictly after `after`, or undefined if there is none within five years. */
  next(after: Date): Date | undefined;
}

const FIELDS = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'], first: 1 },
  { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], first: 0 },
] as const;

export function parseSchedule(expression: string): Schedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 6) {
    throw new ConfigError(`timer schedule "${expression}" must have six fields: second minute hour day month day-of-week (NCRONTAB)`);
  }
  const [seconds, minutes, hours, days, months, weekdays] = parts.map((part, i) => parseField(part, FIELDS[i] as Field, expression)) as Set<number>[] as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  if (weekdays.has(7)) weekdays.add(0); // 7 is Sunday too
  const horizon = 5 * 366 * 24 * 3600 * 1000;
  return {
    expression,
    next(after) {
      const t = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
      const limit = after.getTime() + horizon;
      while (t.getTime() <= limit) {
        if (!months.has(t.getUTCMonth() + 1)) {
          t.setUTCMonth(t.getUTCMonth() + 1, 1);
          t.setUTCHours(0, 0, 0, 0);
        } else if (!days.has(t.getUTCDate()) || !weekdays.has(t.getUTCDay())) {
          t.setUTCDate(t.getUTCDate() + 1);
          t.setUTCHours(0, 0, 0, 0);
        } else if (!hours.has(t.getUTCHours())) {
          t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
        } else if (!minutes.has(t.getUTCMinutes())) {
          t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
        } else if (!seconds.has(t.getUTCSeconds())) {
          t.setUTCSeconds(t.getUTCSeconds() + 1, 0);
        } else {
          return t;
        }
      }
      return undefined;
    },
  };
}

type Field = { name: string; min: number; max: number; names?: readonly string[]; first?: number };

function parseField(text: string, field: Field, expression: string): Set<number> {
  const values = new Set<number>();
  const fail = (why: string): never => {
    throw new ConfigError(`timer schedule "${expression}": ${field.name} field "${text}": ${why}`);
  };
  const value = (token: string): number => {
    const named = field.names?.indexOf(token.toLowerCase()) ?? -1;
    const n = named >= 0 ? named + (field.first ?? 0) : /^\d+$/.test(token) ? Number(token) : NaN;
    if (!Number.isInteger(n) || n < field.min || n > field.max) fail(`expected ${field.min}-${field.max}${field.names ? ' or a name' : ''}, got "${token}"`);
    return n;
  };
  for (const item of text.split(',')) {
    const [range = '', stepText, extra] = item.split('/');
    if (extra !== undefined || range === '') fail(`cannot read "${item}"`);
    const step =
      stepText === undefined
        ? 1
        : /^\d+$/.test(stepText) && Number(stepText) > 0
          ? Number(stepText)
          : fail(`step must be a positive number, got "${stepText}"`);
    let from: number;
    let to: number;
    if (range === '*') [from, to] = [field.min, field.max];
    else if (range.includes('-')) {
      const [a = '', b = ''] = range.split('-');
      [from, to] = [value(a), value(b)];
      if (from > to) fail(`range ${range} runs backwards`);
    } else {
      from = value(range);
      to = stepText === undefined ? from : field.max;
    }
    for (let n = from; n <= to; n += step) values.add(n);
  }
  return values;
}
