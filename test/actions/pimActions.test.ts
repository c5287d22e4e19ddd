import { executeOnVerifiedTarget } from '../../shared/actions/execute';
import { describe, expect, it } from 'vitest';
import type { ExecutionOutcome } from '../../shared/actions/executor';
import { MAX_RECORDED_ROLES, requirePimReapproval, restorePimAssignments, type PimSnapshot } from '../../shared/actions/requirePimReapproval';
import { command } from '../fixtures/commands';
import { DEMO, GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR } from '../../sandbox/tenant';
import { useSandboxContext } from '../support/sandboxContext';

const env = useSandboxContext();

const tenant = () => env.sandbox.tenant;
const megan = { type: 'user' as const, id: DEMO.megan, upn: 'megan.bowen@contoso.com' };
const run = (target: object = megan, overrides = {}) =>
  executeOnVerifiedTarget(requirePimReapproval, command('requirePimReapproval', target as never, overrides), env.context);
const requests = () => tenant().count('POST', /ScheduleRequests$/);
const rolesOf = (id: string) => tenant().roleAssignments.filter((a) => a.principalId === id);

describe('requirePimReapproval through Graph PIM', () => {
  it("ends an admin's activation, once, and snapshots it", async () => {
    const outcome = await run();
    expect(outcome).toEqual({
      outcome: 'succeeded',
      alreadyDone: false,
      rollback: {
        principalId: DEMO.megan,
        removed: [{ roleDefinitionId: GLOBAL_ADMINISTRATOR, directoryScopeId: '/', assignmentType: 'Activated' }],
        policyGaps: [],
      },
      detail: `ended ${GLOBAL_ADMINISTRATOR} (Activated) for megan.bowen@contoso.com; getting them back needs a PIM activation`,
    });
    expect(rolesOf(DEMO.megan)).toEqual([]);
    // Redelivered after a crash between the request and the record: nothing is requested again.
    expect(await run()).toMatchObject({ outcome: 'succeeded', alreadyDone: true });
    expect(requests()).toBe(1);
  });

  it('makes a permanent assignment eligible before removing it, and reports a role whose activation needs no approval', async () => {
    tenant().assignRole(DEMO.jsmith, SECURITY_ADMINISTRATOR, 'Assigned');
    const outcome = await run({ type: 'user', upn: 'jsmith@contoso.com' });
    expect(outcome).toMatchObject({ outcome: 'succeeded', rollback: { policyGaps: [SECURITY_ADMINISTRATOR] } });
    expect((outcome as { detail: string }).detail).toMatch(/POLICY GAP: activating 194ae4cb-b126-40b2-bd5b-6091b380977d needs no approval/);
    expect(tenant().roleEligibilities).toEqual([expect.objectContaining({ principalId: DEMO.jsmith, roleDefinitionId: SECURITY_ADMINISTRATOR })]);
    expect(rolesOf(DEMO.jsmith)).toEqual([]);
    const order = tenant()
      .calls.filter((c) => c.method === 'POST')
      .map((c) => c.path.split('/').pop());
    expect(order).toEqual(['roleEligibilityScheduleRequests', 'roleAssignmentScheduleRequests']);
  });

  it('has nothing to do for a user without roles, and says so for roles held through a group', async () => {
    expect(await run({ type: 'user', id: DEMO.adele })).toMatchObject({ outcome: 'succeeded', alreadyDone: true });
    tenant().assignRole(DEMO.adele, GLOBAL_ADMINISTRATOR, 'Assigned');
    tenant().roleAssignments.at(-1)!.memberType = 'Group';
    expect(await run({ type: 'user', id: DEMO.adele })).toMatchObject({
      outcome: 'succeeded',
      alreadyDone: true,
      detail: expect.stringMatching(/held through a group are not removable per user/),
    });
    expect(requests()).toBe(0);
  });

  it('is transient with the five-minute floor right after an activation', async () => {
    tenant().roleAssignments.find((a) => a.principalId === DEMO.megan)!.startDateTime = new Date().toISOString();
    expect(await run()).toMatchObject({ outcome: 'failed', class: 'transient', code: 'ActiveDurationTooShort', retryAfterMs: 300_000 });
    expect(rolesOf(DEMO.megan)).toHaveLength(1);
  });

  it('re-reads on RoleAssignmentDoesNotExist instead of trusting it', async () => {
    env.sandbox.faults.add({
      path: /roleAssignmentScheduleRequests$/,
      count: 1,
      status: 400,
      body: { error: { code: 'RoleAssignmentDoesNotExist', message: 'The Role assignment does not exist.' } },
    });
    expect(await run()).toMatchObject({ outcome: 'failed', class: 'transient', detail: expect.stringMatching(/still holds/) });
    expect(await run()).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
  });

  it('reads, then requests nothing, in audit mode', async () => {
    expect(await run(megan, { mode: 'audit' })).toMatchObject({
      outcome: 'audited',
      detail: `audit mode: would end ${GLOBAL_ADMINISTRATOR} (Activated) for megan.bowen@contoso.com`,
    });
    expect(requests()).toBe(0);
  });
});

describe('restorePimAssignments (rollback)', () => {
  it('restores permanent assignments, not activations (the user asks PIM again)', async () => {
    tenant().assignRole(DEMO.megan, SECURITY_ADMINISTRATOR, 'Assigned');
    const done = (await run()) as Extract<ExecutionOutcome, { outcome: 'succeeded' }>;
    expect((done.rollback as PimSnapshot).removed).toHaveLength(2);
    const restore = () =>
      executeOnVerifiedTarget(restorePimAssignments, command('restorePimAssignments', megan, {}, 2), { ...env.context, snapshot: done.rollback });
    expect(await restore()).toMatchObject({
      outcome: 'succeeded',
      alreadyDone: false,
      detail: `restored ${SECURITY_ADMINISTRATOR}; activations are not recreated: the user requests them in PIM`,
    });
    expect(rolesOf(DEMO.megan).map((a) => `${a.roleDefinitionId}:${a.assignmentType}`)).toEqual([`${SECURITY_ADMINISTRATOR}:Assigned`]);
    expect(await restore()).toMatchObject({ outcome: 'succeeded', alreadyDone: true });
    expect(await executeOnVerifiedTarget(restorePimAssignments, command('restorePimAssignments', megan), env.context)).toMatchObject({
      outcome: 'failed',
      class: 'permanent',
    });
  });

  it('holds, before any write, a user with more roles than a rollback snapshot can record', async () => {
    for (let i = 0; i <= MAX_RECORDED_ROLES; i++)
      env.sandbox.tenant.assignRole(DEMO.megan, `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, 'Assigned');
    expect(await run()).toMatchObject({ outcome: 'held', detail: expect.stringMatching(/holds 102 direct active roles, more than the 100/) });
    expect(env.sandbox.tenant.count('POST', /roleAssignmentScheduleRequests$/)).toBe(0);
  });
});
