import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FieldNames, Fields } from '../../shared/signals/fields';

/** Objects as JSON.parse makes them, so their keys are what a payload's keys are. */
const parsed = (text: string) => JSON.parse(text) as Record<string, unknown>;

describe('FieldNames', () => {
  const fields = new FieldNames(['aadUserId', 'kind']);

  it('reads each name whatever its ASCII case, a key spelled exactly as declared winning wherever it stands', () => {
    expect(fields.read(parsed('{"AADUSERID":"a","aadUserId":"b"}'))).toEqual({ aadUserId: 'b' });
    expect(fields.read(parsed('{"aadUserId":"b","AadUserId":"a"}'))).toEqual({ aadUserId: 'b' });
    expect(fields.read(parsed('{"AadUserId":"a","AADUSERID":"c","Kind":"Host"}'))).toEqual({ aadUserId: 'a', kind: 'Host' });
  });

  it('reads objects of one shape alike, and a different shape afresh', () => {
    const shapes = [
      '{"kind":"Account","AadUserId":"1"}',
      '{"kind":"Host","AadUserId":"2"}',
      '{"Kind":"Ip","aadUserId":"3"}',
      '{"AadUserId":"4","aadUserId":"5"}',
    ];
    expect(shapes.map((s) => fields.read(parsed(s)))).toEqual([
      { aadUserId: '1', kind: 'Account' },
      { aadUserId: '2', kind: 'Host' },
      { aadUserId: '3', kind: 'Ip' },
      { aadUserId: '5' },
    ]);
  });

  it('never reads inherited properties, nor names that only look alike beyond ASCII', () => {
    const inheriting = Object.assign(Object.create({ kind: 'Account' }) as Record<string, unknown>, { aadUserId: 'own' });
    expect(fields.read(inheriting)).toEqual({ aadUserId: 'own' });
    expect(fields.read(parsed('{"aadUserId":"plain"}'))).toEqual({ aadUserId: 'plain' });
    expect(fields.read(inheriting)).toEqual({ aadUserId: 'own' });
    // JSON.parse makes "__proto__" an own key like any other, not a prototype.
    expect(fields.read(parsed('{"__proto__":{"kind":"Account"}}'))).toEqual({});
    expect(fields.read(parsed('{"\u212aind":"Account"}'))).toEqual({}); // KELVIN SIGN lower-cases to k
  });

  it('keeps a key sent with an undefined value, as Fields.get does, and reads a value that is itself a record as is', () => {
    const nested = { kind: 'Host' };
    expect(fields.read({ AadUserId: undefined, AADUSERID: 'later' })).toEqual({ aadUserId: undefined });
    expect(fields.read({ KIND: nested }).kind).toBe(nested);
  });

  it('reads nothing a payload did not send: absent fields are absent, not inherited from Object.prototype', () => {
    const values = fields.read(parsed('{"constructor":"x","toString":"y","hasOwnProperty":"z"}'));
    expect(values).toEqual({});
    expect(values.kind).toBeUndefined();
    expect(Object.getPrototypeOf(fields.read(parsed('{"__proto__":{"polluted":true},"kind":"Host"}')))).toBe(Object.prototype);
  });

  it('refuses a declaration that could not be read honestly', () => {
    // An absent field of such a name would read as the member every object inherits.
    expect(() => new FieldNames(['constructor'])).toThrow(/every object inherits it/);
    expect(() => new FieldNames(['__proto__'])).toThrow(/every object inherits it/);
    // Two names one key could spell.
    expect(() => new FieldNames(['FQDN', 'fqdn'])).toThrow(/declared twice/);
  });

  /** Spellings of a few names, near misses beyond ASCII, and keys every object inherits. */
  const KEYS = [
    ...['aadUserId', 'AadUserId', 'AADUSERID', 'aaduserid'],
    ...['kind', 'Kind', 'KIND', '\u212aind', '\u212aIND'],
    ...['FQDN', 'fqdn', 'Fqdn'],
    ...['$ref', '$REF'],
    ...['hostName', 'HostName', 'hostname', 'hostNames'],
    ...['İd', 'id', 'ID', '\u0130D'],
    ...['__proto__', 'constructor', 'toString', 'valueOf', 'other'],
  ];
  const NAMES = ['aadUserId', 'kind', 'FQDN', '$ref', 'hostName', 'id'] as const;
  /** A JSON object with some of KEYS, in any order, each holding its position: so a read says which key it came from. */
  const objects = fc
    .uniqueArray(fc.constantFrom(...KEYS), { maxLength: 12 })
    .map((keys) => parsed(`{${keys.map((k, i) => `${JSON.stringify(k)}:${i}`).join(',')}}`));
  /** The rule, as plainly as it can be said: the key spelled exactly, else the first own key equal to it when ASCII letters are lower-cased. */
  const asciiLowerCase = (text: string) => text.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const definition = (record: Record<string, unknown>, name: string): unknown => {
    if (Object.hasOwn(record, name)) return record[name];
    const key = Object.keys(record).find((k) => asciiLowerCase(k) === asciiLowerCase(name));
    return key === undefined ? undefined : record[key];
  };

  it('reads every name as its definition says, and as Fields.get reads it', () => {
    fc.assert(
      fc.property(objects, (record) => {
        const values = new FieldNames(NAMES).read(record);
        for (const name of NAMES) {
          expect(values[name]).toBe(definition(record, name));
          expect(values[name]).toBe(Fields.of(record, '').get(name));
        }
      }),
    );
  });

  it('reads each field the same whichever other fields are declared beside it, and in whatever order', () => {
    fc.assert(
      fc.property(objects, fc.shuffledSubarray([...NAMES], { minLength: 1 }), (record, declared) => {
        const alone = new FieldNames(declared).read(record);
        const all = new FieldNames(NAMES).read(record);
        for (const name of declared) expect(alone[name]).toBe(all[name]);
      }),
    );
  });
});
