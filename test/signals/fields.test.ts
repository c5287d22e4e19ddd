import { describe, expect, it } from 'vitest';
import { FieldTable } from '../../shared/signals/fields';

/** Objects as JSON.parse makes them, so their keys are what a payload's keys are. */
const parsed = (text: string) => JSON.parse(text) as Record<string, unknown>;

describe('FieldTable', () => {
  const table = new FieldTable(['aadUserId', 'kind']);

  it('reads each name whatever its ASCII case, a key spelled exactly as listed winning wherever it stands', () => {
    expect(table.read(parsed('{"AADUSERID":"a","aadUserId":"b"}'))).toEqual(['b', undefined]);
    expect(table.read(parsed('{"aadUserId":"b","AadUserId":"a"}'))).toEqual(['b', undefined]);
    expect(table.read(parsed('{"AadUserId":"a","AADUSERID":"c","Kind":"Host"}'))).toEqual(['a', 'Host']);
  });

  it('reads objects of one shape alike, and a different shape afresh', () => {
    const shapes = [
      '{"kind":"Account","AadUserId":"1"}',
      '{"kind":"Host","AadUserId":"2"}',
      '{"Kind":"Ip","aadUserId":"3"}',
      '{"AadUserId":"4","aadUserId":"5"}',
    ];
    expect(shapes.map((s) => table.read(parsed(s)))).toEqual([
      ['1', 'Account'],
      ['2', 'Host'],
      ['3', 'Ip'],
      ['5', undefined],
    ]);
  });

  it('never reads inherited properties, nor names that only look alike beyond ASCII', () => {
    const inheriting = Object.assign(Object.create({ kind: 'Account' }) as Record<string, unknown>, { aadUserId: 'own' });
    expect(table.read(inheriting)).toEqual(['own', undefined]);
    // Right after an object with the same own keys: the inherited key must not be read as the next one in order.
    expect(table.read(parsed('{"aadUserId":"plain"}'))).toEqual(['plain', undefined]);
    expect(table.read(inheriting)).toEqual(['own', undefined]);
    // JSON.parse makes "__proto__" an own key like any other, not a prototype.
    expect(table.read(parsed('{"__proto__":{"kind":"Account"}}'))).toEqual([undefined, undefined]);
    expect(table.read(parsed('{"\u212aind":"Account"}'))).toEqual([undefined, undefined]); // KELVIN SIGN lower-cases to k
  });
});
