import { executeOnVerifiedTarget } from '../../shared/actions/execute';
import { describe, expect, it } from 'vitest';
import { confirmCompromised } from '../../shared/actions/confirmCompromised';
import { disableUser, enableUser } from '../../shared/actions/disableUser';
import { revokeSessions } from '../../shared/actions/revokeSessions';
import { command } from '../fixtures/commands';
import { DEMO } from '../../sandbox/tenant';
import { useSandboxContext } from '../support/sandboxContext';

const env = useSandboxContext();

const adele = { type: 'user' as const, id: DEMO.adele, upn: 'adele.vance@contoso.com' };
const tenant = () => env.sandbox.tenant;
const patches = () => tenant().count('PATCH', /^\/v1\.0\/users\//);

describe('disableUser through the Graph SDK', () => {
  it('disables the account, verifies it, and snapshots that it was enabled', async () => {
    const outcome = await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context);
    expect(outcome).toEqual({ outcome: 'succeeded', alreadyDone: false, rollback: { wasEnabled: true }, detail: 'disabled adele.vance@contoso.com' });
    expect(tenant().users.get(DEMO.adele)?.accountEnabled).toBe(false);
    const graphCalls = tenant().calls.filter((c) => c.path.startsWith('/v1.0/'));
    expect(graphCalls.map((c) => `${c.method} ${c.status}`)).toEqual(['GET 200', 'PATCH 204', 'GET 200']);
  });

  it('writes nothing when the account is already disabled, and records that it was', async () => {
    tenant().users.get(DEMO.adele)!.accountEnabled = false;
    const outcome = await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context);
    expect(outcome).toMatchObject({ outcome: 'succeeded', alreadyDone: true, rollback: { wasEnabled: false } });
    expect(patches()).toBe(0);
  });

  it('disables once when run twice in a row, or redelivered after a crash between execute and record', async () => {
    await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context);
    const again = await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context); // the redelivery: nothing recorded the first
    expect(again).toMatchObject({ outcome: 'succeeded', alreadyDone: true });
    expect(patches()).toBe(1);
  });

  it('reads, then writes nothing, in audit mode', async () => {
    const outcome = await executeOnVerifiedTarget(disableUser, command('disableUser', adele, { mode: 'audit' }), env.context);
    expect(outcome).toEqual({ outcome: 'audited', detail: 'audit mode: would disable adele.vance@contoso.com (currently enabled)' });
    expect(patches()).toBe(0);
    expect(tenant().users.get(DEMO.adele)?.accountEnabled).toBe(true);
  });

  it('is blocked, not retried, on a privileged admin (Graph 403)', async () => {
    const outcome = await executeOnVerifiedTarget(disableUser, command('disableUser', { type: 'user', id: DEMO.megan }), env.context);
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'blocked', status: 403, code: 'Authorization_RequestDenied' });
    // Graph's 403 names no permission: the ledger says what disableUser calls, in case one is missing.
    expect((outcome as { detail: string }).detail).toMatch(
      /route to requirePimReapproval and a human — if a permission is missing: disableUser in enforce mode calls graph User\.Read\.All \(to read users\); graph User\.EnableDisableAccount\.All \(to disable accounts\)$/,
    );
    expect(tenant().users.get(DEMO.megan)?.accountEnabled).toBe(true);
  });

  it('fails permanently for a user that does not exist', async () => {
    const outcome = await executeOnVerifiedTarget(
      disableUser,
      command('disableUser', { type: 'user', id: '12345678-0000-4000-8000-000000000000' }),
      env.context,
    );
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'permanent', status: 404 });
  });

  it('is transient on 429 (keeping Retry-After), on 5xx and on a dropped connection', async () => {
    env.sandbox.faults.add({
      method: 'PATCH',
      count: 1,
      status: 429,
      headers: { 'retry-after': '7' },
      body: { error: { code: 'TooManyRequests', message: 'Too many requests' } },
    });
    expect(await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context)).toMatchObject({
      outcome: 'failed',
      class: 'transient',
      status: 429,
      retryAfterMs: 7000,
    });
    env.sandbox.faults.add({ method: 'GET', count: 1, status: 503, body: { error: { code: 'serviceNotAvailable', message: 'down' } } });
    expect(await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context)).toMatchObject({
      outcome: 'failed',
      class: 'transient',
      status: 503,
    });
    env.sandbox.faults.add({ method: 'PATCH', count: 1, drop: true });
    expect(await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context)).toMatchObject({
      outcome: 'failed',
      class: 'transient',
      status: 0,
    });
    expect(tenant().users.get(DEMO.adele)?.accountEnabled).toBe(true);
    // And once the API recovers, the same command completes.
    expect(await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context)).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
  });

  it('is transient at the Graph write quota, keeping its Retry-After', async () => {
    tenant().graphWriteQuota = { max: 0, windowMs: 150_000 };
    const outcome = await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context);
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'transient', status: 429, code: 'TooManyRequests' });
    expect((outcome as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
  });

  it('rolls back: re-enables only an account it disabled itself', async () => {
    const done = await executeOnVerifiedTarget(disableUser, command('disableUser', adele), env.context);
    const snapshot = (done as { rollback: unknown }).rollback;
    expect(await executeOnVerifiedTarget(enableUser, command('enableUser', adele), { ...env.context, snapshot })).toMatchObject({
      outcome: 'succeeded',
      detail: 'enabled adele.vance@contoso.com',
    });
    expect(tenant().users.get(DEMO.adele)?.accountEnabled).toBe(true);

    tenant().users.get(DEMO.adele)!.accountEnabled = false; // disabled by someone else (say, attack disruption)
    const refused = await executeOnVerifiedTarget(enableUser, command('enableUser', adele), { ...env.context, snapshot: { wasEnabled: false } });
    expect(refused).toMatchObject({ outcome: 'failed', class: 'permanent' });
    expect(tenant().users.get(DEMO.adele)?.accountEnabled).toBe(false);
  });
});

describe('revokeSessions through the Graph SDK', () => {
  it('revokes, by object id or UPN', async () => {
    expect(
      await executeOnVerifiedTarget(revokeSessions, command('revokeSessions', { type: 'user', upn: 'adele.vance@contoso.com' }), env.context),
    ).toMatchObject({
      outcome: 'succeeded',
    });
    expect(tenant().users.get(DEMO.adele)?.sessionRevocations).toBe(1);
  });

  it('says that revoking a guest does not reach their home tenant', async () => {
    const outcome = await executeOnVerifiedTarget(revokeSessions, command('revokeSessions', { type: 'user', id: DEMO.guest }), env.context);
    expect((outcome as { detail: string }).detail).toMatch(/a guest: revocation does not reach sessions in their home tenant/);
  });

  it('writes nothing in audit mode, and classifies failures', async () => {
    expect(await executeOnVerifiedTarget(revokeSessions, command('revokeSessions', adele, { mode: 'audit' }), env.context)).toMatchObject({
      outcome: 'audited',
    });
    expect(tenant().users.get(DEMO.adele)?.sessionRevocations).toBe(0);
    env.sandbox.faults.add({ method: 'POST', count: 1, status: 500, body: { error: { code: 'generalException', message: 'oops' } } });
    expect(await executeOnVerifiedTarget(revokeSessions, command('revokeSessions', adele), env.context)).toMatchObject({
      outcome: 'failed',
      class: 'transient',
      status: 500,
    });
  });
});

describe('confirmCompromised through the Graph SDK', () => {
  it('confirms, and writes nothing the second time', async () => {
    expect(await executeOnVerifiedTarget(confirmCompromised, command('confirmCompromised', adele), env.context)).toMatchObject({
      outcome: 'succeeded',
      alreadyDone: false,
    });
    expect(tenant().riskyUsers.get(DEMO.adele)).toMatchObject({ riskLevel: 'high', riskState: 'confirmedCompromised' });
    expect(await executeOnVerifiedTarget(confirmCompromised, command('confirmCompromised', adele), env.context)).toMatchObject({
      outcome: 'succeeded',
      alreadyDone: true,
    });
    expect(tenant().count('POST', /confirmCompromised$/)).toBe(1);
  });

  it('resolves a UPN to the object id the call needs, and works for a user with no risk record', async () => {
    expect(
      await executeOnVerifiedTarget(confirmCompromised, command('confirmCompromised', { type: 'user', upn: 'jsmith@contoso.com' }), env.context),
    ).toMatchObject({
      outcome: 'succeeded',
    });
    expect(tenant().riskyUsers.get(DEMO.jsmith)?.riskState).toBe('confirmedCompromised');
  });

  it('is transient on the 429 ID Protection sends without Retry-After', async () => {
    env.sandbox.faults.add({ path: /riskyUsers/, count: 1, status: 429, body: { error: { code: 'TooManyRequests', message: 'slow down' } } });
    const outcome = await executeOnVerifiedTarget(confirmCompromised, command('confirmCompromised', adele), env.context);
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'transient', status: 429 });
    expect(outcome).not.toHaveProperty('retryAfterMs');
  });
});

describe('the sandbox refuses what Azure would', () => {
  it('answers 401 to a call without a token for its audience', async () => {
    const res = await fetch(`${env.sandbox.origin}/v1.0/users/${DEMO.adele}`);
    expect(res.status).toBe(401);
  });
});
