import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { executeOnVerifiedTarget } from '../../shared/actions/execute';
import type { ActionExecutor, ExecutionContext, TargetedContext } from '../../shared/actions/executor';
import type { DeviceTarget, UserTarget } from '../../shared/actions/target';
import type { Devices, Machine } from '../../shared/clients/defender';
import type { Directory, DirectoryUser } from '../../shared/clients/graph';
import { indexProtection } from '../../shared/policy/protection';
import { command } from '../fixtures/commands';

/**
 * The worker's last gate, as a property: whatever a target claims, and whatever was decided, no executor ever runs on a
 * protected principal, and a target whose identifiers name more than one principal is held (or refused, if the one the
 * directory finds is protected). The directory and Defender are small in-memory twins of their ports here, so that
 * thousands of targets can be tried; the sandbox-backed tests exercise the real clients.
 */
const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
const PEOPLE = Array.from({ length: 5 }, (_, i) => ({
  id: `c0000000-0000-4000-8000-${hex(i, 12)}`,
  upn: `person${i}@contoso.com`,
  sam: `p${i}`,
  sid: `S-1-5-21-1-2-3-${1100 + i}`,
}));
const DEVICES = Array.from({ length: 5 }, (_, i) => ({
  id: `dd${hex(i, 38)}`,
  aad: `d0000000-0000-4000-8000-${hex(i, 12)}`,
  fqdn: `host${i}.contoso.com`,
  tag: i % 2 ? 'server' : 'workstation',
}));

const directory: Directory = {
  async getUser(idOrUpn: string) {
    const p = PEOPLE.find((x) => x.id === idOrUpn.toLowerCase() || x.upn === idOrUpn.toLowerCase());
    return (
      p &&
      ({
        id: p.id,
        userPrincipalName: p.upn,
        accountEnabled: true,
        userType: 'Member',
        onPremisesSamAccountName: p.sam,
        onPremisesSecurityIdentifier: p.sid,
      } satisfies DirectoryUser)
    );
  },
  checkMemberGroups: async () => [],
} as unknown as Directory;

const machineOf = (d: (typeof DEVICES)[number]): Machine => ({ id: d.id, computerDnsName: d.fqdn, aadDeviceId: d.aad, machineTags: [d.tag] });
const devices: Devices = {
  getMachine: async (id: string) => DEVICES.map(machineOf).find((m) => m.id === id.toLowerCase()),
  findMachines: async (by: { aadDeviceId: string } | { computerDnsName: string }) =>
    DEVICES.map(machineOf).filter((m) => ('aadDeviceId' in by ? m.aadDeviceId === by.aadDeviceId : m.computerDnsName === by.computerDnsName)),
} as unknown as Devices;

const context: ExecutionContext = { directory, devices, incidents: {} as ExecutionContext['incidents'] };

/** An executor that only records whom it was handed: what the gate let through. */
function recorder(kind: 'revokeSessions' | 'isolateDevice'): { executor: ActionExecutor; ran: Array<TargetedContext['target']> } {
  const ran: Array<TargetedContext['target']> = [];
  return {
    ran,
    executor: { kind, apiCost: () => ({}), execute: async (_c, { target }) => (ran.push(target), { outcome: 'succeeded', alreadyDone: false, detail: 'ok' }) },
  };
}

const choice = fc.oneof(fc.constant('own' as const), fc.constant(null), fc.nat(4));
const pick = (mine: number, c: 'own' | number | null): number | null => (c === 'own' ? mine : c);

describe('the gate before every executor', () => {
  it('never runs an executor on a protected principal; a target naming two principals is held or refused', async () => {
    const counts = { ran: 0, held: 0, blocked: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          people: fc.subarray([0, 1, 2, 3, 4], { maxLength: 2 }),
          peopleBy: fc.constantFrom('id', 'upn', 'sam', 'sid'),
          devices: fc.subarray([0, 1, 2, 3, 4], { maxLength: 2 }),
          devicesBy: fc.constantFrom('id', 'aad', 'fqdn', 'short', 'tag'),
        }),
        fc.record({ kind: fc.constantFrom('user' as const, 'device' as const), owner: fc.nat(4), a: choice, b: choice, c: choice, byName: fc.boolean() }),
        async (world, t) => {
          const users = world.people.map((i) => (PEOPLE[i] as Record<string, string>)[world.peopleBy === 'sam' ? 'sam' : world.peopleBy] as string);
          const listedDevices =
            world.devicesBy === 'tag'
              ? []
              : world.devices.map((i) => {
                  const d = DEVICES[i]!;
                  return world.devicesBy === 'short' ? d.fqdn.split('.')[0]! : world.devicesBy === 'fqdn' ? d.fqdn : world.devicesBy === 'id' ? d.id : d.aad;
                });
          const tags = world.devicesBy === 'tag' ? world.devices.map((i) => DEVICES[i]!.tag) : [];
          const protection = indexProtection({ users, groups: [], devices: listedDevices, deviceTags: tags }, []);
          const protectedPeople = new Set(world.people);
          const protectedDevices = new Set(world.devicesBy === 'tag' ? DEVICES.flatMap((d, i) => (tags.includes(d.tag) ? [i] : [])) : world.devices);

          const named = new Set<number>();
          let target: UserTarget | DeviceTarget;
          if (t.kind === 'user') {
            const [upn, sam, sid] = [pick(t.owner, t.a), pick(t.owner, t.b), pick(t.owner, t.c)];
            // Found by object id, or by UPN alone: whichever, the directory's answer decides who it is.
            target = { type: 'user', ...(t.byName && upn !== null ? { upn: PEOPLE[upn]!.upn } : { id: PEOPLE[t.owner]!.id }) };
            if (!t.byName && upn !== null) target.upn = PEOPLE[upn]!.upn;
            if (sam !== null) target.accountName = PEOPLE[sam]!.sam;
            if (sid !== null) target.sid = PEOPLE[sid]!.sid;
            for (const i of [t.byName && upn !== null ? upn : t.owner, upn, sam, sid]) if (i !== null) named.add(i);
          } else {
            const [aad, fqdn, short] = [pick(t.owner, t.a), pick(t.owner, t.b), pick(t.owner, t.c)];
            target = { type: 'device', id: DEVICES[t.owner]!.id };
            if (aad !== null) target.aadDeviceId = DEVICES[aad]!.aad;
            if (fqdn !== null) target.fqdn = DEVICES[fqdn]!.fqdn;
            if (short !== null) target.hostName = DEVICES[short]!.fqdn.split('.')[0]!.toUpperCase();
            for (const i of [t.owner, aad, fqdn, short]) if (i !== null) named.add(i);
          }
          const owner = t.kind === 'user' && t.byName && pick(t.owner, t.a) !== null ? (pick(t.owner, t.a) as number) : t.owner;
          const { executor, ran } = recorder(t.kind === 'user' ? 'revokeSessions' : 'isolateDevice');
          const outcome = await executeOnVerifiedTarget(executor, command(executor.kind, target), context, protection);

          const ownerProtected = (t.kind === 'user' ? protectedPeople : protectedDevices).has(owner);
          if (ran.length > 0) {
            counts.ran++;
            expect(ownerProtected, `ran on a protected ${t.kind}: ${JSON.stringify(target)}`).toBe(false);
            expect(named.size, `ran on a target naming several: ${JSON.stringify(target)}`).toBe(1);
          } else if (ownerProtected) {
            counts.blocked++;
            expect(outcome).toMatchObject({ outcome: 'failed', class: 'blocked' });
          } else {
            counts.held++;
            expect(named.size).toBeGreaterThan(1);
            expect(outcome).toMatchObject({
              outcome: 'held',
              detail: expect.stringMatching(/^held for a human: the payload and (the directory|Defender) disagree/),
            });
          }
        },
      ),
      { numRuns: 3000, seed: 20261204 },
    );
    console.info(`execution gate property: ${counts.ran} ran, ${counts.held} held, ${counts.blocked} refused`);
    expect(Math.min(counts.ran, counts.held, counts.blocked)).toBeGreaterThan(300);
  });
});
