import { executeOnVerifiedTarget } from '../../shared/actions/execute';
import { describe, expect, it } from 'vitest';
import type { ExecutionOutcome } from '../../shared/actions/executor';
import { isolateDevice, unisolateDevice, type IsolationSnapshot } from '../../shared/actions/isolateDevice';
import { indexProtection } from '../../shared/policy/protection';
import { command } from '../fixtures/commands';
import { DEMO_DEVICES } from '../../sandbox/tenant';
import { useSandboxContext } from '../support/sandboxContext';

const env = useSandboxContext();

const wks = { type: 'device' as const, id: DEMO_DEVICES.wks042, fqdn: 'wks-042.contoso.com' };
const isolate = (target: object = wks, overrides = {}) =>
  executeOnVerifiedTarget(isolateDevice, command('isolateDevice', target as never, { params: { isolationType: 'Selective' }, ...overrides }), env.context);
const tenant = () => env.sandbox.tenant;
const posts = (kind = 'isolate') => tenant().count('POST', new RegExp(`/${kind}$`));

describe('isolateDevice through the Defender API', () => {
  it('posts once, follows the machine action to Succeeded, and snapshots it for the rollback', async () => {
    tenant().actionCompletionMs = 60_000;
    const first = await isolate();
    expect(first).toMatchObject({ outcome: 'pending', followUpAfterMs: 30_000 });
    const [action] = tenant().machineActions;
    expect(action).toMatchObject({ type: 'Isolate', status: 'Pending', isolationType: 'Selective' });
    expect(action?.requestorComment).toContain(command('isolateDevice', wks).idempotencyKey);

    // The follow-up (the same command, later) observes; it never posts again while the action is pending.
    expect(await isolate()).toMatchObject({ outcome: 'pending', detail: expect.stringMatching(/Isolate of wks-042.contoso.com is Pending/) });
    tenant().actionCompletionMs = 0;
    const done = await isolate();
    expect(done).toEqual({
      outcome: 'succeeded',
      alreadyDone: false,
      rollback: { machineId: DEMO_DEVICES.wks042, isolationActionId: action?.id },
      detail: `isolated wks-042.contoso.com (machine action ${action?.id} Succeeded)`,
    });
    expect(tenant().machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(true);
    expect(posts()).toBe(1);
  });

  it('recognizes its own isolation after a crash between posting and recording', async () => {
    await isolate(); // posted; the worker dies before recording anything
    const redelivered = await isolate();
    expect(redelivered).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    expect(posts()).toBe(1);
  });

  it('finds the device by Entra device id or exact FQDN, never by a partial name', async () => {
    expect(await isolate({ type: 'device', aadDeviceId: '80e2f5c1-3b7a-4c55-9d0e-1f2a3b4c5d6e' })).toMatchObject({ outcome: 'pending' });
    env.sandbox.reset();
    expect(await isolate({ type: 'device', fqdn: 'wks-042.contoso.com' })).toMatchObject({ outcome: 'pending' });
    env.sandbox.reset();
    expect(await isolate({ type: 'device', fqdn: 'wks-04.contoso.com' })).toMatchObject({ outcome: 'failed', class: 'permanent', status: 404 });
    expect(await isolate({ type: 'device', id: 'a'.repeat(40) })).toMatchObject({ outcome: 'failed', class: 'permanent', status: 404 });
    expect(posts()).toBe(0);
  });

  it('holds for a human, never guesses, between two devices with the same name that both report', async () => {
    tenant().addMachine({ id: 'b'.repeat(40), computerDnsName: 'wks-042.contoso.com' });
    const outcome = await isolate({ type: 'device', fqdn: 'wks-042.contoso.com' });
    expect(outcome).toEqual({
      outcome: 'held',
      detail: `wks-042.contoso.com: 2 Defender records (${DEMO_DEVICES.wks042}, ${'b'.repeat(40)}) and none of them is clearly the live one`,
    });
    expect(posts()).toBe(0);
  });

  it('isolates the live record of a re-onboarded device: not the stale one its name or Entra id also matches', async () => {
    const aad = '80e2f5c1-3b7a-4c55-9d0e-1f2a3b4c5d6e';
    // The reimaged device's new record; the old one stops reporting and, in time, Defender merges it into the new one.
    tenant().machines.get(DEMO_DEVICES.wks042)!.healthStatus = 'Inactive';
    tenant().addMachine({ id: 'c'.repeat(40), computerDnsName: 'wks-042.contoso.com', aadDeviceId: aad, machineTags: ['workstation'] });
    expect(await isolate({ type: 'device', aadDeviceId: aad })).toMatchObject({ outcome: 'pending' });
    // By name, the same live record: already isolated by the first.
    expect(await isolate({ type: 'device', fqdn: 'wks-042.contoso.com' }, { attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
    expect(tenant().machineActions.map((a) => a.machineId)).toEqual(['c'.repeat(40)]);
    env.sandbox.reset();
    tenant().addMachine({ id: 'c'.repeat(40), computerDnsName: 'wks-042.contoso.com', machineTags: ['workstation'] });
    tenant().machines.get(DEMO_DEVICES.wks042)!.mergedIntoMachineId = 'c'.repeat(40);
    // Named by the stale record's own Defender id (an old alert), it is followed to the record it was merged into.
    expect(await isolate(wks)).toMatchObject({ outcome: 'pending' });
    expect(tenant().machineActions.map((a) => a.machineId)).toEqual(['c'.repeat(40)]);
  });

  it('follows a chain of merged records to the live one, and holds a chain that does not end', async () => {
    const [s, l, m] = ['5', '6', '7'].map((c) => c.repeat(40)) as [string, string, string];
    tenant().addMachine({ id: s, computerDnsName: 'wks-050.contoso.com', mergedIntoMachineId: l });
    tenant().addMachine({ id: l, computerDnsName: 'wks-050.contoso.com', mergedIntoMachineId: m });
    tenant().addMachine({ id: m, computerDnsName: 'wks-050.contoso.com' });
    expect(await isolate({ type: 'device', id: s })).toMatchObject({ outcome: 'pending' });
    expect(tenant().machineActions.map((a) => a.machineId)).toEqual([m]);
    tenant().machines.get(m)!.mergedIntoMachineId = s; // a loop
    expect(await isolate({ type: 'device', id: s }, { attempt: 1 })).toMatchObject({
      outcome: 'held',
      detail: expect.stringMatching(/merged more than 3 times over/),
    });
  });

  it("refuses at execution a device whose stale record's Defender id is listed, named by its live id", async () => {
    tenant().machines.get(DEMO_DEVICES.dc01)!.mergedIntoMachineId = 'e'.repeat(40);
    tenant().addMachine({ id: 'e'.repeat(40), computerDnsName: 'dc01.contoso.com', machineTags: [] });
    const protection = indexProtection({ users: [], groups: [], devices: [DEMO_DEVICES.dc01], deviceTags: [] }, []);
    const outcome = await executeOnVerifiedTarget(isolateDevice, command('isolateDevice', { type: 'device', id: 'e'.repeat(40) }), env.context, protection);
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'blocked', detail: expect.stringMatching(/Defender id of another record of it/) });
    expect(posts()).toBe(0);
  });

  it('picks, among records none of which reports any more, the one seen last', async () => {
    tenant().machines.get(DEMO_DEVICES.wks042)!.healthStatus = 'Inactive';
    tenant().machines.get(DEMO_DEVICES.wks042)!.lastSeen = '2026-11-01T00:00:00Z';
    tenant().addMachine({ id: 'd'.repeat(40), computerDnsName: 'wks-042.contoso.com', healthStatus: 'Inactive', lastSeen: '2026-11-20T00:00:00Z' });
    expect(await isolate({ type: 'device', fqdn: 'wks-042.contoso.com' })).toMatchObject({ outcome: 'pending' });
    expect(tenant().machineActions.map((a) => a.machineId)).toEqual(['d'.repeat(40)]);
  });

  it('leaves a device someone else isolated alone, and its rollback refuses to release it', async () => {
    tenant().machineActions.push(someoneElses('Isolate', 'Succeeded'));
    const outcome = (await isolate()) as Extract<ExecutionOutcome, { outcome: 'succeeded' }>;
    expect(outcome).toMatchObject({ outcome: 'succeeded', alreadyDone: true, rollback: { machineId: DEMO_DEVICES.wks042 } });
    expect(posts()).toBe(0);
    const release = await executeOnVerifiedTarget(unisolateDevice, command('unisolateDevice', wks), { ...env.context, snapshot: outcome.rollback });
    expect(release).toMatchObject({ outcome: 'failed', class: 'permanent' });
    expect(posts('unisolate')).toBe(0);
  });

  it("follows someone else's pending isolation instead of posting a second one", async () => {
    tenant().actionCompletionMs = 60_000;
    tenant().machineActions.push(someoneElses('Isolate', 'Pending'));
    expect(await isolate()).toMatchObject({ outcome: 'pending' });
    expect(posts()).toBe(0);
  });

  it('treats ActiveRequestAlreadyExists (a race with another requester) as in progress', async () => {
    env.sandbox.faults.add({
      method: 'POST',
      path: /isolate$/,
      count: 1,
      status: 400,
      body: { error: { code: 'ActiveRequestAlreadyExists', message: 'Action is already in progress', target: 'corr-1' } },
    });
    expect(await isolate()).toMatchObject({ outcome: 'pending', detail: expect.stringMatching(/already in progress/) });
  });

  it('reads, then posts nothing, in audit mode', async () => {
    expect(await isolate(wks, { mode: 'audit' })).toEqual({ outcome: 'audited', detail: 'audit mode: would isolate wks-042.contoso.com (Selective)' });
    expect(posts()).toBe(0);
  });

  it('is transient at the quota (keeping Retry-After) and on a dropped connection', async () => {
    tenant().defenderQuotas['defender-isolate'] = { max: 0, windowMs: 60_000 }; // the reads are within theirs
    const outcome = await isolate();
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'transient', status: 429, code: 'TooManyRequests' });
    expect((outcome as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    env.sandbox.reset();
    env.sandbox.faults.add({ method: 'POST', count: 1, drop: true });
    expect(await isolate()).toMatchObject({ outcome: 'failed', class: 'transient', status: 0 });
  });

  it('reports its own failed isolation, and the next attempt posts a new one: one post per attempt', async () => {
    await isolate();
    tenant().machineActions[0]!.status = 'Failed';
    tenant().machines.get(DEMO_DEVICES.wks042)!.isolated = false;
    expect(await isolate()).toMatchObject({ outcome: 'failed', class: 'transient', detail: expect.stringMatching(/Failed$/) });
    expect(await isolate()).toMatchObject({ outcome: 'failed', class: 'transient' }); // a redelivery of that attempt: still no post
    expect(await isolate(wks, { attempt: 1 })).toMatchObject({ outcome: 'pending' });
    expect(await isolate(wks, { attempt: 1 })).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    expect(posts()).toBe(2);
    expect(tenant().machineActions.map((a) => a.requestorComment.split(':')[0])).toEqual([
      `Sentinel Responder ${command('isolateDevice', wks).idempotencyKey}#0`,
      `Sentinel Responder ${command('isolateDevice', wks).idempotencyKey}#1`,
    ]);
  });
});

describe('unisolateDevice (rollback)', () => {
  it('releases a device the engine isolated, once, and never while an isolation is pending', async () => {
    await isolate();
    const done = (await isolate()) as Extract<ExecutionOutcome, { outcome: 'succeeded' }>;
    const snapshot = done.rollback as IsolationSnapshot;

    tenant().actionCompletionMs = 60_000;
    tenant().machineActions.push(someoneElses('Isolate', 'Pending'));
    expect(await executeOnVerifiedTarget(unisolateDevice, command('unisolateDevice', wks, {}, 2), { ...env.context, snapshot })).toMatchObject({
      outcome: 'pending',
    });
    expect(posts('unisolate')).toBe(0);

    tenant().machineActions.pop();
    expect(await executeOnVerifiedTarget(unisolateDevice, command('unisolateDevice', wks, {}, 2), { ...env.context, snapshot })).toMatchObject({
      outcome: 'pending',
    });
    tenant().actionCompletionMs = 0;
    expect(await executeOnVerifiedTarget(unisolateDevice, command('unisolateDevice', wks, {}, 2), { ...env.context, snapshot })).toMatchObject({
      outcome: 'succeeded',
      alreadyDone: false,
    });
    expect(tenant().machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(false);
    expect(posts('unisolate')).toBe(1);
  });
});

function someoneElses(type: 'Isolate' | 'Unisolate', status: 'Pending' | 'Succeeded') {
  const at = new Date().toISOString();
  return {
    id: `other-${Math.random().toString(16).slice(2)}`,
    type,
    status,
    machineId: DEMO_DEVICES.wks042,
    computerDnsName: 'wks-042.contoso.com',
    requestor: 'soc-analyst@contoso.com',
    requestorComment: 'manual isolation from the portal',
    creationDateTimeUtc: at,
    lastUpdateDateTimeUtc: at,
    endsAs: 'Succeeded' as const,
  };
}
