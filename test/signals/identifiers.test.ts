import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isDnsName, isGuid, isGuidAt, isMdeDeviceId, isUpn, parseIncidentArmId } from '../../shared/signals/identifiers';

/**
 * The identifier checks are loops over character codes, for speed; these regular expressions are their definition.
 * Each check must agree with its expression on every string, including the near misses a generator of random text
 * would rarely hit: so the strings are built from the characters that matter, and from valid ids with one mutation.
 */
const DEFINITIONS = {
  guid: { check: isGuid, pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i },
  mde: { check: isMdeDeviceId, pattern: /^[0-9a-f]{40}$/i },
  upn: {
    check: isUpn,
    // Nothing invisible anywhere (shared/limits.ts UNPRINTABLE): a bidirectional override would show it as another UPN.
    pattern:
      // eslint-disable-next-line no-control-regex, no-misleading-character-class -- these characters are the point
      /^(?![^]*[\u0000-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\u3000\u3164\ufeff\uffa0])[^\s@/\\'"?%]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/i,
    maxLength: 320,
  },
  dns: { check: isDnsName, pattern: /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/i },
} as const;

const expected = (name: keyof typeof DEFINITIONS, value: string): boolean => {
  const def = DEFINITIONS[name];
  return ('maxLength' in def ? value.length <= def.maxLength : true) && def.pattern.test(value);
};

/** Characters that decide the answers: hex and non-hex letters in both cases, separators, forbidden punctuation, every kind of whitespace, and non-ASCII look-alikes (ſ and K fold to ASCII letters in some case rules). */
const MEANINGFUL = [
  ...'0123456789abcdefABCDEFgGzZ-._@/\\\'"?#%: \t\n\r\v\f',
  '\u00a0',
  '\u1680',
  '\u2000',
  '\u200a',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u205f',
  '\u3000',
  '\ufeff',
  '\u0085',
  '\u180e',
  '\u0001',
  '\u202e',
  '\u200b',
  '\u200b',
  '\u017f',
  '\u212a',
  'é',
  '\u0130',
  '\ud83d',
];
const meaningfulText = (maxLength: number) => fc.array(fc.constantFrom(...MEANINGFUL), { maxLength }).map((cs) => cs.join(''));

const VALID = {
  guid: '6e7b768e-07e2-4810-8459-485f84f8f204',
  mde: '0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9',
  upn: 'adele.vance@mail.contoso-ltd.com',
  dns: 'wks_042.corp-1.contoso.com',
};
/** A valid id with one character replaced, inserted or removed. */
const mutated = (valid: string) =>
  fc
    .record({ at: fc.nat(valid.length), op: fc.constantFrom('replace', 'insert', 'remove'), ch: fc.constantFrom(...MEANINGFUL) })
    .map(({ at, op, ch }) => valid.slice(0, at) + (op === 'remove' ? '' : ch) + valid.slice(op === 'insert' ? at : at + 1));

describe.each(Object.keys(DEFINITIONS) as Array<keyof typeof DEFINITIONS>)('%s check', (name) => {
  const { check } = DEFINITIONS[name];

  it('accepts the valid example and rejects the empty string', () => {
    expect(check(VALID[name])).toBe(true);
    expect(check(VALID[name].toUpperCase())).toBe(true);
    expect(check('')).toBe(false);
  });

  it('agrees with its regular expression on strings of the characters that matter', () => {
    fc.assert(
      fc.property(meaningfulText(48), (value) => check(value) === expected(name, value)),
      { numRuns: 3000 },
    );
  });

  it('agrees with its regular expression on one-character mutations of a valid id', () => {
    fc.assert(
      fc.property(mutated(VALID[name]), (value) => check(value) === expected(name, value)),
      { numRuns: 3000 },
    );
  });
});

describe('a GUID within a longer text', () => {
  const isGuidThere = (text: string, at: number) => at >= 0 && text.length >= at + 36 && DEFINITIONS.guid.pattern.test(text.slice(at, at + 36));

  it('is found where it sits, and nowhere else', () => {
    const text = `/incidents/${VALID.guid}`;
    expect(isGuidAt(text, 11)).toBe(true);
    for (const at of [-1, 0, 10, 12, text.length - 35, text.length]) expect(isGuidAt(text, at)).toBe(false);
  });

  it('agrees with the expression on the 36 characters from any position, valid or mutated', () => {
    fc.assert(
      fc.property(
        meaningfulText(12),
        fc.oneof(mutated(VALID.guid), meaningfulText(40)),
        meaningfulText(12),
        fc.integer({ min: -2, max: 30 }),
        (before, middle, after, shift) => {
          const text = before + middle + after;
          const at = before.length + (shift % 3 === 0 ? 0 : shift);
          return isGuidAt(text, at) === isGuidThere(text, at);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('length limits', () => {
  const label = (n: number) => 'a'.repeat(n);
  it.each([
    ['dns', `${label(63)}.com`],
    ['dns', `${label(64)}.com`],
    ['dns', Array.from({ length: 4 }, () => label(63)).join('.')],
    ['dns', `${Array.from({ length: 3 }, () => label(63)).join('.')}.${label(61)}`],
    ['dns', `${Array.from({ length: 3 }, () => label(63)).join('.')}.${label(62)}`],
    ['upn', `${label(300)}@${label(15)}.com`],
    ['upn', `${label(301)}@${label(15)}.com`],
    ['upn', `a@${label(400)}.com`],
  ] as const)('%s %#', (name, value) => {
    expect(DEFINITIONS[name].check(value)).toBe(expected(name, value));
  });
});

describe('incident ARM id', () => {
  /** The definition: each part bounded in the expression itself. parseIncidentArmId checks the lengths after matching. */
  const DEFINITION =
    /^\/subscriptions\/([0-9a-f-]{36})\/resourceGroups\/([-\w._()]{1,90})\/providers\/Microsoft\.OperationalInsights\/workspaces\/([-\w]{1,63})\/providers\/Microsoft\.SecurityInsights\/Incidents\/([-\w]{1,64})$/i;
  const define = (armId: string) => {
    const m = DEFINITION.exec(armId);
    return m ? { subscriptionId: m[1], resourceGroup: m[2], workspaceName: m[3], incidentName: m[4] } : undefined;
  };
  const armId = (sub: string, rg: string, ws: string, id: string) =>
    `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.OperationalInsights/workspaces/${ws}/providers/Microsoft.SecurityInsights/Incidents/${id}`;
  const VALID_ID = armId('0b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21', 'rg-siem', 'law-sentinel', '73e01a99-5cd7-4139-a149-9f2736ff2ab5');

  it('parses a valid id, in any case', () => {
    expect(parseIncidentArmId(VALID_ID)).toEqual({
      subscriptionId: '0b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21',
      resourceGroup: 'rg-siem',
      workspaceName: 'law-sentinel',
      incidentName: '73e01a99-5cd7-4139-a149-9f2736ff2ab5',
    });
    expect(parseIncidentArmId(VALID_ID.toLowerCase())).toEqual(define(VALID_ID.toLowerCase()));
  });

  it.each([
    ['a 35-character subscription', armId('0'.repeat(35), 'rg', 'ws', 'id')],
    ['a 37-character subscription', armId('0'.repeat(37), 'rg', 'ws', 'id')],
    ['a 90-character resource group', armId('0'.repeat(36), 'r'.repeat(90), 'ws', 'id')],
    ['a 91-character resource group', armId('0'.repeat(36), 'r'.repeat(91), 'ws', 'id')],
    ['a 63-character workspace', armId('0'.repeat(36), 'rg', 'w'.repeat(63), 'id')],
    ['a 64-character workspace', armId('0'.repeat(36), 'rg', 'w'.repeat(64), 'id')],
    ['a 64-character incident name', armId('0'.repeat(36), 'rg', 'ws', 'i'.repeat(64))],
    ['a 65-character incident name', armId('0'.repeat(36), 'rg', 'ws', 'i'.repeat(65))],
    ['an empty resource group', armId('0'.repeat(36), '', 'ws', 'id')],
    ['a path in the resource group', armId('0'.repeat(36), 'rg/../x', 'ws', 'id')],
  ])('agrees with the definition on %s', (_what, value) => {
    expect(parseIncidentArmId(value)).toEqual(define(value));
  });

  it('agrees with the definition on one-character mutations of a valid id', () => {
    const mutation = fc.record({
      at: fc.nat(VALID_ID.length),
      op: fc.constantFrom('replace', 'insert', 'remove'),
      ch: fc.constantFrom(...MEANINGFUL, '(', ')', 'Z', '_'),
    });
    fc.assert(
      fc.property(mutation, ({ at, op, ch }) => {
        const value = VALID_ID.slice(0, at) + (op === 'remove' ? '' : ch) + VALID_ID.slice(op === 'insert' ? at : at + 1);
        expect(parseIncidentArmId(value)).toEqual(define(value));
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with the definition on ids built from parts of any length and content', () => {
    const part = (max: number) => fc.string({ unit: fc.constantFrom(...'0aF-_.()/xZ'), maxLength: max });
    fc.assert(
      fc.property(part(40), part(95), part(68), part(68), (sub, rg, ws, id) => {
        const value = armId(sub, rg, ws, id);
        expect(parseIncidentArmId(value)).toEqual(define(value));
      }),
      { numRuns: 3000 },
    );
  });
});
