import { describe, expect, it } from 'vitest';
import { liveMachine, verifiedDevice, verifiedUser } from '../../shared/actions/resolveTarget';
import type { Machine } from '../../shared/clients/defender';
import { deviceConflicts, objectIdOfCloudSid, userConflicts } from '../../shared/policy/identity';
import type { VerifiedDevice, VerifiedUser } from '../../shared/signals/signal';

const adele: VerifiedUser = { id: '6e7b768e-07e2-4810-8459-485f84f8f204', upn: 'adele.vance@contoso.com', guest: false };
const hybrid: VerifiedUser = {
  id: '3c5a1e8e-2f62-4d8b-9c11-7a0d3b4c5e6f',
  upn: 'john.smith@contoso.com',
  onPremisesUpn: 'jsmith@corp.contoso.com',
  samAccountName: 'jsmith',
  sid: 'S-1-5-21-1004336348-1177238915-682003330-1105',
  guest: false,
};
const guest: VerifiedUser = {
  id: '5a5a5a5a-0000-4000-8000-00000000beef',
  upn: 'partner_fabrikam.com#ext#@contoso.onmicrosoft.com',
  mail: 'partner@fabrikam.com',
  guest: true,
};

/** Entra's own conversion (the object id's 16 bytes as four little-endian 32-bit numbers), written independently. */
function cloudSidOf(objectId: string): string {
  const hex = objectId.replace(/-/g, '');
  const swap = (h: string) => h.match(/../g)!.reverse().join('');
  const bytes = Buffer.from(swap(hex.slice(0, 8)) + swap(hex.slice(8, 12)) + swap(hex.slice(12, 16)) + hex.slice(16), 'hex');
  return `S-1-12-1-${[0, 4, 8, 12].map((i) => bytes.readUInt32LE(i)).join('-')}`;
}

describe('who a payload says a user is, against the directory', () => {
  it('agrees when every claim is one of the names the directory gives the user', () => {
    expect(userConflicts({ id: adele.id.toUpperCase(), upn: 'Adele.Vance@contoso.com', accountName: 'adele.vance' }, adele)).toEqual([]);
    expect(userConflicts({ upn: 'jsmith@corp.contoso.com', accountName: 'JSMITH', sid: hybrid.sid!.toLowerCase() }, hybrid)).toEqual([]);
    // A guest as a sign-in names them: by their home address.
    expect(userConflicts({ upn: 'partner@fabrikam.com', accountName: 'partner' }, guest)).toEqual([]);
    // An Entra-joined device names a cloud user by a SID made of the object id, and by a local form of the name.
    expect(userConflicts({ sid: cloudSidOf(adele.id), accountName: 'adelevance' }, adele)).toEqual([]);
    // A UPN a payload built from a sAMAccountName and a domain is a guess: the name is what is compared.
    expect(userConflicts({ id: hybrid.id, accountName: 'jsmith', upn: 'jsmith@contoso.com' }, hybrid)).toEqual([]);
    expect(userConflicts({ id: hybrid.id, accountName: 'jsmith2', upn: 'jsmith2@contoso.com' }, hybrid)).toHaveLength(2);
  });

  it('names each claim that points elsewhere, with both values', () => {
    expect(userConflicts({ id: adele.id, upn: 'breakglass1@contoso.com', accountName: 'breakglass1' }, adele)).toEqual([
      "the payload's account name is breakglass1, the directory's names are adele.vance",
      "the payload's UPN is breakglass1@contoso.com, the directory's is adele.vance@contoso.com",
    ]);
    expect(userConflicts({ id: '99999999-9999-4999-8999-999999999999', upn: adele.upn }, adele)).toEqual([
      `the payload's object id is 99999999-9999-4999-8999-999999999999, the directory's is ${adele.id}`,
    ]);
    expect(userConflicts({ sid: 'S-1-5-21-1-2-3-500' }, hybrid)).toEqual([`the payload's SID is S-1-5-21-1-2-3-500, the directory's is ${hybrid.sid}`]);
    expect(userConflicts({ sid: 'S-1-5-21-1-2-3-500' }, adele)).toEqual([
      `the payload's SID is S-1-5-21-1-2-3-500, the directory's is none (cloud account ${adele.id})`,
    ]);
    expect(userConflicts({ sid: cloudSidOf(hybrid.id) }, adele)).toHaveLength(1);
    // A guest's home address is theirs only when they are a guest.
    expect(userConflicts({ upn: 'partner@fabrikam.com' }, { ...guest, guest: false })).toHaveLength(1);
  });

  it('reads a cloud SID back to the object id it was made from, and nothing else', () => {
    for (const id of [adele.id, hybrid.id, guest.id, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '00000000-0000-0000-0000-000000000000']) {
      expect(objectIdOfCloudSid(cloudSidOf(id))).toBe(id);
    }
    expect(objectIdOfCloudSid('S-1-12-1-4294967296-0-0-0')).toBeUndefined();
    expect(objectIdOfCloudSid(hybrid.sid!)).toBeUndefined();
  });
});

describe('which device a payload says it is, against Defender', () => {
  const wks: VerifiedDevice = {
    id: '0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9',
    computerDnsName: 'wks-042.contoso.com',
    aadDeviceId: '80e2f5c1-3b7a-4c55-9d0e-1f2a3b4c5d6e',
  };

  it('agrees on the same device named any way it is known', () => {
    expect(
      deviceConflicts(
        { id: wks.id.toUpperCase(), aadDeviceId: wks.aadDeviceId, fqdn: 'WKS-042.contoso.com', hostName: 'WKS-042', netBiosName: 'WKS-042' },
        wks,
      ),
    ).toEqual([]);
    // Defender may know a machine by its short name only; a NetBIOS name is the first 15 characters.
    expect(deviceConflicts({ fqdn: 'wks-042.contoso.com' }, { ...wks, computerDnsName: 'wks-042' })).toEqual([]);
    expect(deviceConflicts({ netBiosName: 'FINANCE-LAPTOP-' }, { ...wks, computerDnsName: 'finance-laptop-0042.contoso.com' })).toEqual([]);
    // The stale record's id, followed to the record Defender merged it into.
    expect(deviceConflicts({ id: 'a'.repeat(40) }, { ...wks, mergedFrom: 'a'.repeat(40) })).toEqual([]);
  });

  it('names each claim that points at another device', () => {
    expect(deviceConflicts({ id: wks.id, hostName: 'DC01' }, wks)).toEqual(["the payload's host name is dc01, Defender's is wks-042.contoso.com"]);
    expect(deviceConflicts({ fqdn: 'wks-042.fabrikam.com' }, wks)).toEqual([
      "the payload's host name is wks-042.fabrikam.com, Defender's is wks-042.contoso.com",
    ]);
    expect(deviceConflicts({ aadDeviceId: '00000000-0000-4000-8000-0000000000d1' }, { ...wks, aadDeviceId: undefined })).toEqual([
      "the payload's Entra device id is 00000000-0000-4000-8000-0000000000d1, Defender's is none (wks-042.contoso.com)",
    ]);
    expect(deviceConflicts({ id: 'b'.repeat(40) }, wks)).toEqual([`the payload's Defender id is ${'b'.repeat(40)}, Defender's is ${wks.id}`]);
  });
});

describe('answers checked like payloads', () => {
  it('refuses an identity the engine could not act on safely', () => {
    expect(verifiedUser({ id: 'megan', userPrincipalName: 'megan@contoso.com', accountEnabled: true, userType: 'Member' })).toMatch(/not a GUID/);
    expect(verifiedUser({ id: adele.id, userPrincipalName: '', accountEnabled: true, userType: 'Member' })).toMatch(/no UPN/);
    expect(verifiedDevice({ id: 'x', computerDnsName: 'a', aadDeviceId: null, machineTags: [] })).toMatch(/not 40 hexadecimal/);
    // A device reports its own name: one line, bounded, whatever it sent.
    const device = verifiedDevice({ id: 'a'.repeat(40), computerDnsName: `WKS\nResult: done${'x'.repeat(400)}`, aadDeviceId: 'junk', machineTags: ['Server'] });
    expect(device).toMatchObject({ computerDnsName: expect.stringMatching(/^wks result: donex+…$/), tags: ['Server'] });
    expect((device as VerifiedDevice).computerDnsName).toHaveLength(253);
    expect(device).not.toHaveProperty('aadDeviceId');
  });
});

describe('the live record among several', () => {
  const record = (id: string, fields: Partial<Machine> = {}): Machine => ({
    id: id.repeat(40),
    computerDnsName: 'wks-042.contoso.com',
    aadDeviceId: null,
    machineTags: [],
    healthStatus: 'Active',
    onboardingStatus: 'Onboarded',
    lastSeen: '2026-12-01T00:00:00Z',
    ...fields,
  });

  it.each([
    ['drops one merged into another', [record('a', { mergedIntoMachineId: 'b'.repeat(40) }), record('b')], 'b'],
    ['prefers the onboarded one', [record('a', { onboardingStatus: 'InsufficientInfo' }), record('b')], 'b'],
    [
      'reads the status however the API spells it',
      [record('a', { onboardingStatus: undefined, onboardingstatus: 'onboarded' }), record('b', { onboardingStatus: 'CanBeOnboarded' })],
      'a',
    ],
    ['prefers the one still reporting', [record('a', { healthStatus: 'Inactive', lastSeen: '2026-12-03T00:00:00Z' }), record('b')], 'b'],
    [
      'among silent ones, the one seen last',
      [record('a', { healthStatus: 'Inactive' }), record('b', { healthStatus: 'NoSensorData', lastSeen: '2026-12-02T00:00:00Z' })],
      'b',
    ],
  ])('%s', (_what, machines, live) => {
    expect(liveMachine(machines)).toEqual({ status: 'live', machine: expect.objectContaining({ id: live.repeat(40) }) });
  });

  it.each([
    ['two that both report', [record('a'), record('b')]],
    ['silent ones seen at the same time', [record('a', { healthStatus: 'Inactive' }), record('b', { healthStatus: 'Inactive' })]],
    ['silent ones whose last sighting is unknown', [record('a', { healthStatus: 'Inactive', lastSeen: undefined }), record('b', { healthStatus: 'Inactive' })]],
  ])('leaves it to a human when no record is clearly the live one: %s', (_what, machines) => {
    expect(liveMachine(machines)).toMatchObject({ status: 'ambiguous', why: expect.stringMatching(/none of them is clearly the live one/) });
  });
});
