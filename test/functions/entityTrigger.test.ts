import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { requestAction } from '../../functions/actions';
import { TEXT_LIMITS } from '../../shared/limits';
import { DEMO, DEMO_DEVICES, SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** A playbook run on an entity relays Sentinel's entity trigger body: `{ kind, entity, reason? }` instead of a target. */
const POLICY = `version: 1
mode: enforce
protected: { users: [breakglass1@contoso.com], deviceTags: [critical] }
rules: []
`;

const ANALYST = '0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL(`../fixtures/entityTrigger/${name}.json`, import.meta.url), 'utf8')) as Record<string, unknown>;
const ACCOUNT = fixture('account');
const HOST = fixture('host');
const OUTSIDE_INCIDENT = fixture('account-outside-incident');

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(() => engine.configure({ RESPONDER_POLICY: POLICY }));

const ask = async (body: Record<string, unknown>) =>
  call(requestAction, 'actions', { body, headers: await engine.bearer(['Responder.Act'], { oid: ANALYST, name: 'Analyst A' }) });
/** A trigger body like `base` whose Entity has `properties` instead. */
const withProperties = (base: Record<string, unknown>, properties: Record<string, unknown>) => ({ ...base, Entity: { properties } });

describe('POST /api/actions with the body of Sentinel entity trigger', () => {
  it('acts on the account the trigger names, once, and records the incident it came from', async () => {
    const queue = engine.startWorker();
    const res = await ask({ kind: 'revokeSessions', entity: ACCOUNT, reason: 'run from the incident page' });
    expect(res.status).toBe(202);
    expect(res.json.action).toMatchObject({
      kind: 'revokeSessions',
      target: { type: 'user', id: DEMO.adele, upn: 'adele.vance@contoso.com' },
      reason: 'run from the incident page',
      source: { type: 'manual', requestedBy: ANALYST, incidentArmId: SAMPLE_INCIDENT_ID },
    });
    await queue.idle();
    queue.stop();
    expect((await engine.ledger.get(res.json.action.key))?.state).toBe('succeeded');
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(1);
  });

  it('isolates the host the trigger names, found by its Defender id', async () => {
    const queue = engine.startWorker();
    const res = await ask({ kind: 'isolateDevice', entity: HOST });
    expect(res.status).toBe(202);
    expect(res.json.action).toMatchObject({
      kind: 'isolateDevice',
      target: { type: 'device', id: DEMO_DEVICES.wks042, fqdn: 'wks-042.contoso.com' },
      source: { type: 'manual', requestedBy: ANALYST, incidentArmId: SAMPLE_INCIDENT_ID },
    });
    await queue.idle();
    queue.releaseScheduled();
    await queue.idle();
    queue.stop();
    expect((await engine.ledger.get(res.json.action.key))?.state).toBe('succeeded');
    expect(engine.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(true);
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(1);
  });

  it('says why when the playbook gives no reason: the trigger and its incident, or that there was none', async () => {
    const res = await ask({ kind: 'revokeSessions', entity: ACCOUNT, reason: '  ' });
    expect(res.status).toBe(202);
    expect(res.json.action.reason).toBe(`requested from Sentinel's entity trigger on ${SAMPLE_INCIDENT_ID}`);
    const outside = await ask({ kind: 'confirmCompromised', entity: OUTSIDE_INCIDENT });
    expect(outside.status).toBe(202);
    expect(outside.json.action.reason).toBe("requested from Sentinel's entity trigger outside an incident");
    expect(outside.json.action.source).not.toHaveProperty('incidentArmId');
    const { IncidentArmID: _absent, ...noIncident } = ACCOUNT;
    const absent = await ask({ kind: 'disableUser', entity: noIncident });
    expect([absent.status, absent.json.action.source.incidentArmId]).toEqual([202, undefined]);
  });

  it('reads the entity whatever its casing or form: camel case, its own kind, an Entra device id, a fully qualified name', async () => {
    const camel = await ask({ kind: 'revokeSessions', entity: withProperties(ACCOUNT, { name: 'adele.vance', upnSuffix: 'contoso.com' }) });
    expect([camel.status, camel.json.action?.target.id]).toEqual([202, DEMO.adele]);
    // The form Sentinel's entities API gives an incident's entities, with its kind beside its properties.
    const arm = {
      ...HOST,
      Entity: {
        kind: 'Host',
        type: 'Microsoft.SecurityInsights/Entities',
        properties: { hostName: 'WKS-042', aadDeviceId: '80e2f5c1-3b7a-4c55-9d0e-1f2a3b4c5d6e' },
      },
    };
    const byEntraId = await ask({ kind: 'isolateDevice', entity: arm });
    expect([byEntraId.status, byEntraId.json.action?.target.id]).toEqual([202, DEMO_DEVICES.wks042]);
    engine.configure({ RESPONDER_POLICY: POLICY });
    const byName = await ask({ kind: 'isolateDevice', entity: withProperties(HOST, { HostName: 'WKS-042', DnsDomain: 'contoso.com' }) });
    expect([byName.status, byName.json.action?.target.id]).toEqual([202, DEMO_DEVICES.wks042]);
    const typed = await ask({ kind: 'disableUser', entity: { ...ACCOUNT, EntityType: 'account', WorkspaceId: '11111111-2222-3333-4444-555555555555' } });
    expect(typed.status).toBe(202);
  });

  it('refuses an entity of the wrong type with 400 naming entity, and records nothing', async () => {
    for (const [kind, entity] of [
      ['revokeSessions', HOST],
      ['isolateDevice', ACCOUNT],
      ['disableUser', { ...ACCOUNT, EntityType: 'Host' }],
      ['disableUser', { ...ACCOUNT, Entity: { kind: 'Host', properties: { hostName: 'WKS-042' } } }],
      ['disableUser', { ...ACCOUNT, Entity: { kind: 'Ip', properties: { address: '203.0.113.7' } } }],
    ] as const) {
      const res = await ask({ kind, entity });
      expect([res.status, res.json.error?.target], `${kind} on ${JSON.stringify(entity).slice(0, 60)}`).toEqual([400, 'entity']);
    }
    expect(engine.ledger.all()).toEqual([]);
  });

  it('holds an entity whose identifiers name two different users, and acts on neither without a human', async () => {
    // The object id is Adele's; the name is John Smith's.
    const mixed = withProperties(ACCOUNT, { Name: 'jsmith', UPNSuffix: 'contoso.com', AadUserId: DEMO.adele });
    const queue = engine.startWorker();
    const res = await ask({ kind: 'disableUser', entity: mixed });
    expect(res.status).toBe(202);
    // Held on the directory's record for the object id, with the disagreement for the approver to see.
    expect(res.json.action).toMatchObject({ state: 'pending-approval', target: { id: DEMO.adele, upn: 'adele.vance@contoso.com' } });
    expect(res.json.action.stateReason).toMatch(/disagree on who adele\.vance@contoso\.com is: the payload's account name is jsmith/);
    await queue.idle();
    queue.stop();
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(true);
    expect(engine.sandbox.tenant.users.get(DEMO.jsmith)?.accountEnabled).toBe(true);
    expect(engine.sandbox.tenant.count('PATCH', /\/users\//)).toBe(0);
  });

  it('refuses outright when the object id is a protected account, whatever name the entity gives it', async () => {
    const disguised = withProperties(ACCOUNT, { Name: 'adele.vance', UPNSuffix: 'contoso.com', AadUserId: DEMO.breakglass });
    const res = await ask({ kind: 'disableUser', entity: disguised });
    expect([res.status, res.json.error.code, res.json.action?.state]).toEqual([403, 'Protected', 'blocked']);
    expect(engine.sandbox.tenant.count('PATCH', /\/users\//)).toBe(0);
  });

  it('holds an entity whose object id cannot be read, even when its UPN can', async () => {
    const res = await ask({ kind: 'disableUser', entity: withProperties(ACCOUNT, { Name: 'adele.vance', UPNSuffix: 'contoso.com', AadUserId: 'not-a-guid' }) });
    expect([res.status, res.json.action?.state]).toEqual([202, 'pending-approval']);
  });

  it('answers 400 naming the field for a body it cannot take, never a 5xx', async () => {
    const long = 'x'.repeat(100_000);
    for (const [body, field] of [
      [{ kind: 'disableUser', target: 'adele.vance@contoso.com', entity: ACCOUNT }, 'entity'],
      [{ kind: 'disableUser', reason: 'x' }, 'target'],
      [{ kind: 'disableUser', entity: ACCOUNT, incident: SAMPLE_INCIDENT_ID }, 'incident'],
      [{ kind: 'disableUser', entity: 'adele.vance@contoso.com' }, 'entity'],
      [{ kind: 'disableUser', entity: { IncidentArmID: SAMPLE_INCIDENT_ID } }, 'entity.Entity'],
      [{ kind: 'disableUser', entity: { ...ACCOUNT, Entity: null } }, 'entity.Entity'],
      [{ kind: 'disableUser', entity: { ...ACCOUNT, Entity: [ACCOUNT.Entity] } }, 'entity.Entity'],
      [{ kind: 'disableUser', entity: withProperties(ACCOUNT, { Name: 'adele.vance' }) }, 'entity.Entity'],
      [{ kind: 'disableUser', entity: withProperties(ACCOUNT, { Name: long, UPNSuffix: 'contoso.com' }) }, 'entity.Entity'],
      [{ kind: 'disableUser', entity: withProperties(ACCOUNT, { Name: { first: 'adele' }, UPNSuffix: 'contoso.com' }) }, 'entity.Entity.properties.name'],
      [{ kind: 'isolateDevice', entity: withProperties(HOST, { HostName: 'WKS-042' }) }, 'entity.Entity'],
      [{ kind: 'isolateDevice', entity: withProperties(HOST, { HostName: long, DnsDomain: 'contoso.com' }) }, 'entity.Entity'],
      [{ kind: 'isolateDevice', entity: withProperties(HOST, { HostName: 'WKS-042', additionalData: { MdatpDeviceId: 'zz' } }) }, 'entity.Entity'],
      [{ kind: 'disableUser', entity: { ...ACCOUNT, IncidentArmID: 'INC-42' } }, 'entity.IncidentArmID'],
      [{ kind: 'disableUser', entity: { ...ACCOUNT, IncidentArmID: `${SAMPLE_INCIDENT_ID}${long}` } }, 'entity.IncidentArmID'],
      [{ kind: 'disableUser', entity: { ...ACCOUNT, EntityType: long } }, 'entity'],
      [{ kind: 'disableUser', entity: ACCOUNT, reason: long }, 'reason'],
    ] as const) {
      const res = await ask(body);
      expect([res.status, res.json.error?.target], JSON.stringify(body).slice(0, 120)).toEqual([400, field]);
      expect(res.json.error.message.length).toBeLessThan(600);
    }
    expect(engine.ledger.all()).toEqual([]);
  });

  it('keeps display text from the entity within its limits', async () => {
    const res = await ask({ kind: 'revokeSessions', entity: withProperties(ACCOUNT, { AadUserId: DEMO.adele, friendlyName: `A\u202e${'A'.repeat(10_000)}` }) });
    expect(res.status).toBe(202);
    const shown = res.json.action.target.displayName as string;
    expect(shown.length).toBe(TEXT_LIMITS.name);
    expect(shown).toMatch(/^A A+…$/);
  });
});
