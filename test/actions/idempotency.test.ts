import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTION_KINDS } from '../../shared/actions/catalogue';
import { messageIdOf } from '../../shared/actions/command';
import { IDEMPOTENCY_KEY_PATTERN, idempotencyKeys, targetKeyPart } from '../../shared/actions/idempotency';
import { INCIDENT_ID } from '../fixtures/signals';

const GUID = '6e7b768e-07e2-4810-8459-485f84f8f204';
const MDE = '0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9';
const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
/** Target ids of every form a target id takes: object and device GUIDs, Defender ids, UPNs, FQDNs. */
const targetIds = fc.oneof(
  fc.nat().map((n) => `00000000-0000-4000-8000-${hex(n, 12)}`),
  fc.nat().map((n) => hex(n, 40)),
  fc.stringMatching(/^[a-z0-9.]{1,20}@[a-z0-9]{1,10}\.com$/),
  fc.stringMatching(/^[a-z0-9-]{1,20}(\.[a-z0-9]{1,10}){0,2}$/),
);

describe('idempotency keys', () => {
  it('carry the kind and a GUID or Defender id as they are; hash anything else', () => {
    const keyOf = idempotencyKeys(INCIDENT_ID.toLowerCase());
    expect(keyOf('revokeSessions', targetKeyPart(GUID))).toMatch(new RegExp(`^[0-9a-f]{24}\\.revokeSessions\\.${GUID}$`));
    expect(keyOf('isolateDevice', targetKeyPart(MDE))).toMatch(new RegExp(`^[0-9a-f]{24}\\.isolateDevice\\.${MDE}$`));
    expect(keyOf('disableUser', targetKeyPart('adele.vance@contoso.com'))).toMatch(/^[0-9a-f]{24}\.disableUser\.h[0-9a-f]{32}$/);
  });

  it('are the same for the same subject, kind and target, every time', () => {
    const subject = INCIDENT_ID.toLowerCase();
    expect(idempotencyKeys(subject)('disableUser', targetKeyPart(GUID))).toBe(idempotencyKeys(subject)('disableUser', targetKeyPart(GUID)));
  });

  it('never share a key between distinct (subject, kind, target) triples, and always fit the pattern, the RowKey rules and a MessageId', () => {
    const triple = fc.record({ subject: fc.constantFrom('a', 'b', INCIDENT_ID.toLowerCase()), kind: fc.constantFrom(...ACTION_KINDS), id: targetIds });
    fc.assert(
      fc.property(fc.uniqueArray(triple, { selector: (t) => `${t.subject}\n${t.kind}\n${t.id}`, minLength: 2, maxLength: 30 }), (triples) => {
        const keys = triples.map((t) => idempotencyKeys(t.subject)(t.kind, targetKeyPart(t.id)));
        expect(new Set(keys).size).toBe(keys.length);
        for (const key of keys) {
          expect(key).toMatch(IDEMPOTENCY_KEY_PATTERN);
          // Table RowKey's forbidden characters: / \ # ? and control characters.
          expect([...key].some((c) => '/\\#?'.includes(c) || c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f))).toBe(false);
          // The longest derived MessageId the engine sends stays under Service Bus's 128 characters.
          expect(messageIdOf({ idempotencyKey: key, replay: 1000, attempt: 1000, followUp: 10_000, deferral: 100_000 }).length).toBeLessThanOrEqual(128);
        }
      }),
      { numRuns: 300 },
    );
  });
});
