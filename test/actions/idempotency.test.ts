import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTIONS, ACTION_KINDS } from '../../shared/actions/catalogue';
import { messageIdOf } from '../../shared/actions/command';
import { IDEMPOTENCY_KEY_PATTERN, idempotencyKeys, targetKeyPart } from '../../shared/actions/idempotency';
import type { IncidentRef } from '../../shared/signals/signal';

const GUID = '6e7b768e-07e2-4810-8459-485f84f8f204';
const MDE = '0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9';
const INCIDENT_GUID = '73e01a99-5cd7-4139-a149-9f2736ff2ab5';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** An incident as the normalizer describes it: the ARM id lower-cased as the subject, the parts as the payload spelled them. */
function incident(name: string, workspace: Partial<IncidentRef> = {}): { subject: string; incident: IncidentRef } {
  const ref: IncidentRef = {
    armId: '',
    name,
    subscriptionId: '0b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21',
    resourceGroup: 'rg-SIEM',
    workspaceName: 'law-sentinel',
    ...workspace,
  };
  ref.armId = `/subscriptions/${ref.subscriptionId}/resourceGroups/${ref.resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${ref.workspaceName}/providers/Microsoft.SecurityInsights/Incidents/${name}`;
  return { subject: ref.armId.toLowerCase(), incident: ref };
}
const workspaceDigest = (ref: IncidentRef) => sha256(`${ref.subscriptionId}/${ref.resourceGroup}/${ref.workspaceName}`.toLowerCase()).slice(0, 8);

/** Target ids of every form a target id takes, by target type: object and device GUIDs, Defender ids, UPNs, FQDNs. */
const GUIDS = fc.nat().map((n) => `00000000-0000-4000-8000-${hex(n, 12)}`);
const TARGET_IDS = {
  user: fc.oneof(GUIDS, fc.stringMatching(/^[a-z0-9.]{1,20}@[a-z0-9]{1,10}\.com$/)),
  device: fc.oneof(
    GUIDS,
    fc.nat().map((n) => hex(n, 40)),
    fc.stringMatching(/^[a-z0-9-]{1,20}(\.[a-z0-9]{1,10}){0,2}$/),
  ),
};

describe('idempotency keys', () => {
  it("carry an incident's workspace digest and GUID, the kind, and a GUID or Defender id as they are; hash anything else", () => {
    const given = incident(INCIDENT_GUID);
    const keyOf = idempotencyKeys(given);
    const subjectPart = `${workspaceDigest(given.incident)}73e01a995cd74139a1499f2736ff2ab5`;
    expect(keyOf('revokeSessions', targetKeyPart(GUID))).toBe(`${subjectPart}.revokeSessions.${GUID}`);
    expect(keyOf('isolateDevice', targetKeyPart(MDE))).toBe(`${subjectPart}.isolateDevice.${MDE}`);
    expect(keyOf('disableUser', targetKeyPart('adele.vance@contoso.com'))).toBe(
      `${subjectPart}.disableUser.h${sha256('adele.vance@contoso.com').slice(0, 32)}`,
    );
  });

  it('hash the whole subject when it is not an incident named by a GUID', () => {
    expect(idempotencyKeys({ subject: 'alert:2518...-x' })('disableUser', GUID)).toBe(`${sha256('alert:2518...-x').slice(0, 40)}.disableUser.${GUID}`);
    for (const name of ['inc-1', 'x'.repeat(36), `${INCIDENT_GUID.slice(1)}0`.replace('-', '_')]) {
      const named = incident(name);
      expect(idempotencyKeys(named)('disableUser', GUID)).toBe(`${sha256(named.subject).slice(0, 40)}.disableUser.${GUID}`);
    }
  });

  it('are the same for the same incident however its ARM id is spelled, and differ between workspaces', () => {
    const key = (given: ReturnType<typeof incident>) => idempotencyKeys(given)('disableUser', GUID);
    const usual = key(incident(INCIDENT_GUID));
    expect(key(incident(INCIDENT_GUID))).toBe(usual);
    expect(
      key(
        incident(INCIDENT_GUID.toUpperCase(), {
          resourceGroup: 'RG-siem',
          workspaceName: 'LAW-Sentinel',
          subscriptionId: '0B8A3F7E-1C55-4A1E-9D5B-2F0C6C1B7D21',
        }),
      ),
    ).toBe(usual);
    const elsewhere = [{ workspaceName: 'law-other' }, { resourceGroup: 'rg-other' }, { subscriptionId: '1b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21' }].map((w) =>
      key(incident(INCIDENT_GUID, w)),
    );
    expect(new Set([usual, ...elsewhere]).size).toBe(4);
  });

  it('do not depend on which workspaces were keyed before (the digests remembered are a cache, never a source)', () => {
    // More workspaces than are remembered, in two orders: every key is still its workspace's digest and its GUID.
    const incidents = Array.from({ length: 40 }, (_, i) => incident(`00000000-0000-4000-8000-${hex(i, 12)}`, { workspaceName: `law-${i % 20}` }));
    for (const given of [...incidents, ...[...incidents].reverse()]) {
      const key = idempotencyKeys(given)('revokeSessions', GUID);
      expect(key.slice(0, 8)).toBe(workspaceDigest(given.incident));
      expect(key.slice(8, 40)).toBe(given.incident.name.replaceAll('-', ''));
    }
  });

  it('never share a key between distinct (subject, kind, target) triples, and always fit the pattern, the RowKey rules and a MessageId', () => {
    // Incidents of three workspaces sharing GUIDs, incidents named otherwise, alerts and requests.
    const subjects = fc.oneof(
      fc
        .record({ guid: fc.constantFrom(INCIDENT_GUID, GUID, '00000000-0000-4000-8000-000000000001'), ws: fc.constantFrom('law-a', 'law-b', 'LAW-A', 'law-c') })
        .map(({ guid, ws }) => incident(guid, { workspaceName: ws })),
      fc.constantFrom('inc-1', 'inc-2').map((name) => incident(name)),
      fc.constantFrom('a', 'b', 'alert:1').map((subject) => ({ subject })),
    );
    const triple = fc
      .record({ given: subjects, kind: fc.constantFrom(...ACTION_KINDS) })
      .chain(({ given, kind }) => TARGET_IDS[ACTIONS[kind].target].map((id) => ({ given, kind, id })));
    fc.assert(
      fc.property(fc.uniqueArray(triple, { selector: (t) => `${t.given.subject}\n${t.kind}\n${t.id}`, minLength: 2, maxLength: 30 }), (triples) => {
        const keys = triples.map((t) => idempotencyKeys(t.given)(t.kind, targetKeyPart(t.id)));
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

  it('are refused by the pattern when any part is malformed or the kind unknown', () => {
    const key = idempotencyKeys(incident(INCIDENT_GUID))('isolateDevice', MDE);
    expect(key).toMatch(IDEMPOTENCY_KEY_PATTERN);
    for (const bad of [key.slice(1), `${key}0`, key.replace('isolateDevice', 'formatDisk'), key.replace('.', '/'), `x${key.slice(1)}`]) {
      expect(bad).not.toMatch(IDEMPOTENCY_KEY_PATTERN);
    }
  });
});
