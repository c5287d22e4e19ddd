import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NameIndex } from '../../shared/signals/names';
import { techniqueOf } from '../../shared/signals/identifiers';

const TABLE: Array<[string, number]> = [
  ['CredentialAccess', 10],
  ['T1078', 5],
  ['t1110', 7],
  ['Microsoft Defender Advanced Threat Protection', 5],
];

describe('NameIndex', () => {
  const index = new NameIndex(TABLE);

  it.each([
    ['the policy spelling', 'CredentialAccess', false, 10],
    ['another case', 'CREDENTIALACCESS', false, 10],
    ['lower case', 'credentialaccess', false, 10],
    ['a name listed in lower case, spelled otherwise', 'T1110', true, 7],
    ['a sub-technique, as a technique', 'T1078.004', true, 5],
    ['a sub-technique in another case', 't1078.004', true, 5],
    ['a sub-technique where techniques are not meant', 'T1078.004', false, undefined],
    ['a product with spaces', 'microsoft defender advanced threat protection', false, 5],
    ['an unlisted name', 'Execution', false, undefined],
    ['a prefix of a listed name', 'Credential', false, undefined],
  ])('%s: %s', (_what, name, technique, expected) => {
    expect(index.get(name, technique)).toBe(expected);
  });

  it('gives names listed twice in different cases the later value, under every spelling', () => {
    const twice = new NameIndex([
      ['Impact', 20],
      ['IMPACT', 30],
    ]);
    expect([twice.get('Impact', false), twice.get('IMPACT', false), twice.get('impact', false)]).toEqual([30, 30, 30]);
  });

  it('answers as a lower-cased table would, for any spelling of any name', () => {
    const letters = fc.constantFrom(...'aAbBtT1078.');
    const name = fc.oneof(
      fc.constantFrom(...TABLE.map(([n]) => n)),
      fc.string({ unit: letters, maxLength: 10 }),
      fc.string({ unit: 'grapheme-ascii', maxLength: 12 }),
    );
    const spelling = fc
      .tuple(name, fc.array(fc.boolean(), { maxLength: 60 }))
      .map(([n, upper]) => [...n].map((ch, i) => (upper[i] ? ch.toUpperCase() : ch.toLowerCase())).join(''));
    const table = fc.array(fc.tuple(fc.oneof(name, spelling), fc.integer({ min: 0, max: 50 })), { maxLength: 8 });
    fc.assert(
      fc.property(table, spelling, fc.boolean(), (entries, probe, technique) => {
        const lowered = new Map(entries.map(([n, v]) => [n.toLowerCase(), v]));
        const lower = probe.toLowerCase();
        const expected = lowered.get(lower) ?? (technique ? lowered.get(techniqueOf(lower)) : undefined);
        expect(new NameIndex(entries).get(probe, technique)).toBe(expected);
      }),
    );
  });
});
