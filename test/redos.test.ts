import { describe, expect, it } from 'vitest';
import { parseActionCommand } from '../shared/actions/command';
import { IDEMPOTENCY_KEY_PATTERN } from '../shared/actions/idempotency';
import { inert } from '../shared/actions/report';
import { authenticate } from '../shared/auth/authenticate';
import { unsupportedMediaType } from '../shared/azure/httpFunction';
import { parseRetryAfter } from '../shared/clients/apiError';
import { readConfig } from '../shared/config';
import { parseJson } from '../shared/json';
import { displayText } from '../shared/limits';
import { scrubSecrets } from '../shared/log';
import { parseIncidentArmId } from '../shared/signals/identifiers';
import { normalizeSentinelPayload } from '../shared/signals/sentinel';
import { command } from './fixtures/commands';

/**
 * A ReDoS guard: every regular expression the engine applies to outside data (payloads, headers, log text, queue
 * messages, API answers) runs in time linear in its input. Each is run on 1 MiB shaped to make a backtracking pattern
 * slow. A quadratic one takes minutes on 1 MiB, a linear one milliseconds, so the bounds below tell them apart on any
 * machine without being a performance target. Each shape is tried on 1/16 of the size first, so that a quadratic
 * pattern fails in a second instead of blocking for minutes.
 */
const MiB = 1 << 20;
const BOUND_MS = { small: 250, full: 2000 };
const fill = (unit: string, prefix = ''): string => prefix + unit.repeat(Math.ceil((MiB - prefix.length) / unit.length));

const swallow = (run: () => unknown) => () => {
  try {
    run();
  } catch {
    // Refusing the input is fine; taking minutes to do so is not.
  }
};

const SHAPES: Array<[string, Array<[string, string]>, (input: string) => unknown]> = [
  [
    'log scrubber',
    [
      ['JWT starts after dashes', fill('eyJ-')],
      ['one long JWT-like run', fill('a', 'eyJ')],
      ['JWT-like segments without a third dot', fill('eyJaaaaaaaaaa.')],
      ['Bearer and long whitespace', fill(`Bearer ${' '.repeat(200)};`)],
      ['key names without values', fill('sig=;')],
    ],
    scrubSecrets,
  ],
  ['JSON prototype-key check', [['escapes', `"${fill('\\u0061')}"`]], (text) => parseJson(text)],
  [
    'incident ARM id',
    [
      ['a long subscription', fill('0', '/subscriptions/')],
      ['long segments', fill('a', '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/')],
    ],
    parseIncidentArmId,
  ],
  ['alert id', [['a long id', fill('a')]], (id) => normalizeSentinelPayload({ SystemAlertId: id, Severity: 'High' })],
  [
    'display text and comment text',
    [
      ['control characters', fill('\u0001a')],
      ['link-like text', fill('http://www.](')],
    ],
    (text) => inert(displayText(text, MiB), MiB),
  ],
  ['Retry-After', [['digits then a letter', fill('1') + 'x']], parseRetryAfter],
  [
    'Authorization header',
    [
      ['dots', fill('a.', 'Bearer ')],
      ['spaces', fill(' ', 'Bearer a.b.c') + 'x'],
    ],
    (header) => void authenticate({ get: () => header }, readConfig({})).catch(() => undefined),
  ],
  [
    'Content-Type header',
    [
      ['suffixes', fill('a+', 'application/')],
      ['semicolons', fill('; ', 'application/json')],
    ],
    unsupportedMediaType,
  ],
  ['action key', [['a key-like run', fill('a')]], (key) => IDEMPOTENCY_KEY_PATTERN.test(key)],
  [
    'queue command schema',
    [['a GUID-like id', fill('0-')]],
    (id) => parseActionCommand({ ...command('revokeSessions', { type: 'user', id: '6e7b768e-07e2-4810-8459-485f84f8f204' }), target: { type: 'user', id } }),
  ],
];

describe('regular expressions on outside data are linear', () => {
  for (const [what, inputs, apply] of SHAPES) {
    it.each(inputs)(`${what}: %s, 1 MiB`, (_shape, input) => {
      const timed = (text: string): number => {
        const started = performance.now();
        swallow(() => apply(text))();
        return performance.now() - started;
      };
      expect(timed(input.slice(0, MiB / 16))).toBeLessThan(BOUND_MS.small);
      expect(timed(input)).toBeLessThan(BOUND_MS.full);
    });
  }

  it('the scrubber still finds what it is for', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
    expect(scrubSecrets(`a ${jwt} (${jwt}) x=${jwt}`)).toBe('a [redacted-jwt] ([redacted-jwt]) x=[redacted-jwt]');
  });
});
