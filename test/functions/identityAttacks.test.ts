import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incidents } from '../../functions/incidents';
import { plan } from '../../functions/plan';
import { sampleIncident } from '../fixtures/incidents';
import { DEMO, DEMO_DEVICES } from '../../sandbox/tenant';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/**
 * What an attacker who shapes entity data can try against "the directory decides who a target is", one test each:
 * protected principals listed in forms the payload does not use, stale Defender records, names on others' ids,
 * mentions that disagree, and budgets spent on users who do not exist.
 */
const policyProtecting = (protectedLists: string, extra = '') => `version: 1
mode: enforce
protected: ${protectedLists}
${extra}rules:
  - { id: users, when: { entity: account }, then: [revokeSessions] }
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());

/** The sample incident with these entities (ARM shape) instead of its own. */
function incidentWith(...entities: Array<{ kind: string; properties: Record<string, unknown> }>): Record<string, any> {
  const incident = sampleIncident();
  incident.object.properties.relatedEntities = entities;
  return incident;
}
const account = (properties: Record<string, unknown>) => ({ kind: 'Account', properties });
const host = (properties: Record<string, unknown>) => ({ kind: 'Host', properties });

async function decide(policy: string, body: Record<string, any>, settings: Record<string, string> = {}) {
  engine.configure({ RESPONDER_POLICY: policy, ...settings });
  const res = await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
  expect(res.status).toBe(202);
  return res.json.decision as { actions: Array<{ kind: string }>; skipped: Array<{ kind: string; reason: string; detail: string }> };
}

/** The break-glass account's cloud SID: its object id's 16 bytes as four little-endian numbers. */
const BREAKGLASS_CLOUD_SID = 'S-1-12-1-2576980377-1234803097-2576980361-2576980377';

describe('protection, whatever form a list or a payload uses', () => {
  it('protects a user listed by cloud SID, by mail, or as DOMAIN\\name', async () => {
    for (const listed of [BREAKGLASS_CLOUD_SID, 'CONTOSO\\breakglass1']) {
      const d = await decide(policyProtecting(`{ users: ['${listed}'] }`), incidentWith(account({ aadUserId: DEMO.breakglass })));
      expect(d.actions, listed).toEqual([]);
      expect(d.skipped).toEqual([expect.objectContaining({ reason: 'protected' })]);
    }
    // A guest by their home address; a member by their mail.
    engine.sandbox.tenant.users.get(DEMO.jsmith)!.mail = 'john.smith@contoso.com';
    const guest = await decide(policyProtecting('{ users: [partner@fabrikam.com] }'), incidentWith(account({ aadUserId: DEMO.guest })));
    expect(guest.skipped).toEqual([expect.objectContaining({ reason: 'protected' })]);
  });

  it('protects a device listed by a trailing-dot name, or by the Defender id of a record it left behind', async () => {
    const rooted = await decide(
      policyProtecting("{ devices: ['dc01.contoso.com.'] }"),
      incidentWith(host({ additionalData: { MdatpDeviceId: DEMO_DEVICES.dc01 } })),
    );
    expect(rooted.skipped).toEqual([expect.objectContaining({ kind: 'isolateDevice', reason: 'protected' })]);

    // dc01 was re-onboarded: its old record (listed) was merged into a new one, which the payload names by FQDN.
    engine.configure({ RESPONDER_POLICY: policyProtecting(`{ devices: [${DEMO_DEVICES.dc01}] }`) });
    const tenant = engine.sandbox.tenant;
    tenant.machines.get(DEMO_DEVICES.dc01)!.mergedIntoMachineId = 'e'.repeat(40);
    tenant.addMachine({ id: 'e'.repeat(40), computerDnsName: 'dc01.contoso.com', riskScore: 'High', machineTags: [] });
    const res = await call(incidents, 'incidents', {
      body: incidentWith(host({ hostName: 'dc01', dnsDomain: 'contoso.com' })),
      headers: await engine.bearer(['Incidents.Submit']),
    });
    expect(res.json.decision.skipped).toEqual([
      expect.objectContaining({ kind: 'isolateDevice', reason: 'protected', detail: expect.stringMatching(/Defender id of another record of it/) }),
    ]);
  });

  it("refuses a device named by its live record's id when the list names a record it left behind", async () => {
    engine.configure({ RESPONDER_POLICY: policyProtecting(`{ devices: [${DEMO_DEVICES.dc01}] }`) });
    const tenant = engine.sandbox.tenant;
    tenant.machines.get(DEMO_DEVICES.dc01)!.mergedIntoMachineId = 'e'.repeat(40);
    tenant.addMachine({ id: 'e'.repeat(40), computerDnsName: 'dc01.contoso.com', machineTags: [] });
    const res = await call(incidents, 'incidents', {
      body: incidentWith(host({ hostName: 'DC01', dnsDomain: 'contoso.com', additionalData: { MdatpDeviceId: 'e'.repeat(40) } })),
      headers: await engine.bearer(['Incidents.Submit']),
    });
    expect(res.json.decision.skipped).toEqual([
      expect.objectContaining({ kind: 'isolateDevice', reason: 'protected', detail: expect.stringMatching(/Defender id of another record of it/) }),
    ]);
  });

  it('holds, and does not refuse, a device that reports a protected name another live device reports too', async () => {
    // A compromised Linux box renamed itself dc01.contoso.com: Defender reports the name it reports.
    engine.configure({ RESPONDER_POLICY: policyProtecting('{ devices: [dc01.contoso.com] }') });
    engine.sandbox.tenant.addMachine({ id: 'f'.repeat(40), computerDnsName: 'dc01.contoso.com', riskScore: 'High', machineTags: [] });
    const res = await call(incidents, 'incidents', {
      body: incidentWith(host({ hostName: 'dc01', dnsDomain: 'contoso.com', additionalData: { MdatpDeviceId: 'f'.repeat(40) } })),
      headers: await engine.bearer(['Incidents.Submit']),
    });
    expect(res.json.decision.skipped).toEqual([
      expect.objectContaining({
        kind: 'isolateDevice',
        reason: 'needs-approval',
        detail: expect.stringMatching(/is a protected name, and 2 devices report it/),
      }),
    ]);
  });

  it('holds a device reporting a protected name in another domain, or beside a protected server that stopped reporting', async () => {
    const tenant = () => engine.sandbox.tenant;
    const attacker = (name: string) => incidentWith(host({ hostName: name, additionalData: { MdatpDeviceId: 'f'.repeat(40) } }));
    const held = async (listed: string, reported: string, setup: () => void = () => undefined) => {
      engine.configure({ RESPONDER_POLICY: policyProtecting(`{ devices: [${listed}] }`) });
      setup();
      tenant().addMachine({ id: 'f'.repeat(40), computerDnsName: reported, riskScore: 'High', machineTags: [] });
      const res = await call(incidents, 'incidents', { body: attacker(reported), headers: await engine.bearer(['Incidents.Submit']) });
      return res.json.decision.skipped.map((x: { reason: string }) => x.reason);
    };
    expect(await held('dc01.contoso.com', 'dc01')).toEqual(['needs-approval']);
    expect(await held('dc01', 'dc01.evil.local')).toEqual(['needs-approval']);
    expect(
      await held('dc01.contoso.com', 'dc01.contoso.com', () => (tenant().machines.get(DEMO_DEVICES.dc01)!.healthStatus = 'ImpairedCommunication')),
    ).toEqual(['needs-approval']);
  });

  it('keeps a plan with a draft policy from switching off the checks real incidents get', async () => {
    engine.configure({ RESPONDER_POLICY: policyProtecting('{ devices: [dc01.contoso.com] }') });
    engine.sandbox.tenant.addMachine({ id: 'f'.repeat(40), computerDnsName: 'dc01.contoso.com', riskScore: 'High', machineTags: [] });
    const body = incidentWith(host({ hostName: 'dc01', dnsDomain: 'contoso.com', additionalData: { MdatpDeviceId: 'f'.repeat(40) } }));
    await call(plan, 'plan', {
      body: { incident: body, policy: policyProtecting('{ users: [breakglass1@contoso.com] }') },
      headers: await engine.bearer(['Responder.Read']),
    });
    const res = await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.json.decision.skipped).toEqual([expect.objectContaining({ reason: 'needs-approval', detail: expect.stringMatching(/2 devices report it/) })]);
  });

  it('holds, instead of dropping, an entity one of whose identifiers is malformed', async () => {
    const d = await decide(
      policyProtecting('{ users: [breakglass1@contoso.com] }'),
      incidentWith(host({ hostName: 'wks-042', dnsDomain: 'contoso.com', additionalData: { MdatpDeviceId: DEMO_DEVICES.wks042, AadDeviceId: 'not-a-guid' } })),
    );
    expect(d.skipped).toEqual([
      expect.objectContaining({
        kind: 'isolateDevice',
        reason: 'needs-approval',
        detail: expect.stringMatching(/^an identifier the payload gave could not be read: .*AadDeviceId/),
      }),
    ]);
  });

  it('holds, and does not refuse, a protected name the payload puts on an id nothing lists when the directory cannot be read', async () => {
    // The attacker's own workstation, named DC01: refusing would keep it out of containment on the payload's word.
    const d = await decide(
      policyProtecting('{ devices: [dc01.contoso.com] }'),
      incidentWith(host({ hostName: 'DC01', dnsDomain: 'contoso.com', additionalData: { MdatpDeviceId: DEMO_DEVICES.wks042 } })),
      { RESPONDER_ENRICHMENT: 'off' },
    );
    expect(d.skipped).toEqual([
      expect.objectContaining({
        kind: 'isolateDevice',
        reason: 'needs-approval',
        detail: expect.stringMatching(/the payload names a protected device \(name\)/),
      }),
    ]);
  });

  it('holds an entity whose repeated mentions name it differently', async () => {
    const d = await decide(
      policyProtecting('{ users: [breakglass1@contoso.com] }'),
      incidentWith(
        account({ aadUserId: DEMO.jsmith, accountName: 'jsmith', upnSuffix: 'contoso.com' }),
        account({ aadUserId: DEMO.jsmith, accountName: 'breakglass1', upnSuffix: 'contoso.com' }),
      ),
    );
    expect(d.skipped).toEqual([
      expect.objectContaining({
        reason: 'needs-approval',
        detail: expect.stringMatching(/^another mention of it in the payload disagrees with the directory: the payload's account name is breakglass1/),
      }),
    ]);
    // Mentions that name one hybrid user two true ways (DOMAIN\\sAMAccountName with the SID; the UPN) agree: nothing is held.
    engine.configure({ RESPONDER_POLICY: policyProtecting('{ users: [breakglass1@contoso.com] }') });
    engine.sandbox.tenant.users.get(DEMO.jsmith)!.onPremisesSamAccountName = 'jsmith2';
    engine.sandbox.tenant.users.get(DEMO.jsmith)!.onPremisesSecurityIdentifier = 'S-1-5-21-1-2-3-1105';
    const res = await call(incidents, 'incidents', {
      body: incidentWith(
        account({ aadUserId: DEMO.jsmith, accountName: 'CONTOSO\\jsmith2', sid: 'S-1-5-21-1-2-3-1105' }),
        account({ aadUserId: DEMO.jsmith, accountName: 'jsmith', upnSuffix: 'contoso.com' }),
      ),
      headers: await engine.bearer(['Incidents.Submit']),
    });
    expect(res.json.decision.actions).toEqual([expect.objectContaining({ kind: 'revokeSessions' })]);
  });

  it('spends no cap on users the directory does not have', async () => {
    const ghosts = Array.from({ length: 10 }, (_, i) => account({ aadUserId: `0000dead-0000-4000-8000-${String(i).padStart(12, '0')}` }));
    const d = await decide(
      policyProtecting('{ users: [breakglass1@contoso.com] }', 'guardrails: { caps: [{ action: revokeSessions, max: 10, per: PT15M }] }\n'),
      incidentWith(...ghosts, account({ aadUserId: DEMO.jsmith })),
    );
    expect(d.actions).toEqual([expect.objectContaining({ kind: 'revokeSessions' })]);
    expect(d.skipped.filter((s) => s.reason === 'no-target')).toHaveLength(10);
    expect(d.skipped[0]?.detail).toMatch(/is not in the directory$/);
  });
});
