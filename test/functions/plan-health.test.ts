import { HttpRequest, InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { health } from '../../functions/health';
import { plan } from '../../functions/plan';
import { createHash, randomBytes } from 'node:crypto';
import { incidents } from '../../functions/incidents';
import { buildIncident, sampleIncident } from '../fixtures/incidents';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

let engine: EngineUnderTest;
let reader: Record<string, string>;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(async () => {
  engine.configure();
  reader = await engine.bearer(['Responder.Read']);
});

describe('POST /api/plan', () => {
  it('explains the decision of the deployed policy and writes nothing', async () => {
    const res = await call(plan, 'plan', { body: sampleIncident(), headers: reader });
    expect(res.status).toBe(200);
    const { decision } = res.json;
    expect(decision.policy.origin).toBe('built-in default');
    expect(decision.mode).toBe('audit');
    // Enriched from the sandbox tenant: Adele's user risk (ID Protection), no active role, the device's tags.
    expect(decision.score.factors.map((f: { factor: string }) => f.factor)).toEqual(['severity', 'tactic', 'product', 'userRisk', 'deviceRisk']);
    expect(decision.rules.filter((r: { matched: boolean }) => r.matched).map((r: { ruleId: string }) => r.ruleId)).toEqual([
      'compromised-identity',
      'credential-theft',
      'malware-on-endpoint',
    ]);
    expect(decision.actions.map((a: { kind: string }) => a.kind)).toEqual(['disableUser', 'revokeSessions', 'confirmCompromised', 'isolateDevice']);
    expect(engine.ledger.all()).toEqual([]);
  });

  it("reads only what containment can spare: 120 unknown devices cost a tenth of one Defender API's budget, and the next incident still contains", async () => {
    const incident = buildIncident({ accounts: 0, hosts: 120 });
    for (const entity of incident.object.properties.relatedEntities) entity.properties.additionalData.MdatpDeviceId = randomBytes(20).toString('hex');
    const res = await call(plan, 'plan', { body: incident, headers: reader });
    expect(res.status).toBe(200);
    const defenderCalls = () => engine.sandbox.tenant.calls.filter((c) => c.path.startsWith('/api/')).length;
    // 100 calls a minute to the machine-by-id API (reference/defender.md): a plan may use a tenth of them.
    expect(defenderCalls()).toBe(10);
    expect(res.json.decision.notes).toContainEqual(expect.stringMatching(/not read: the defender-machine budget is kept for containment/));

    // A real incident right after: its device is read and isolated (audit here: the default policy), not held for want of data.
    const contained = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    expect(contained.json.decision.actions.map((a: { kind: string }) => a.kind)).toContain('isolateDevice');
  });

  it('answers in plain text for a terminal when asked', async () => {
    const request = new HttpRequest({
      method: 'POST',
      url: 'http://localhost:7071/api/plan',
      headers: { ...reader, accept: 'text/plain', 'content-type': 'application/json' },
      body: { string: JSON.stringify(sampleIncident()) },
    });
    const res = await plan(request, new InvocationContext({ invocationId: 'text', functionName: 'plan', logHandler: () => undefined }));
    expect(res.status).toBe(200);
    expect(new Headers(res.headers as Record<string, string>).get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.body).toContain('Risk score 100/100');
    expect(res.body).toContain('✓ credential-theft [audit]');
  });

  it('degrades, not fails, when enrichment data is unavailable for now: what reads it waits, and the plan says so', async () => {
    engine.sandbox.faults.add({
      path: /riskyUsers|roleAssignmentScheduleInstances/,
      count: 10,
      status: 503,
      body: { error: { code: 'serviceNotAvailable', message: 'down' } },
    });
    const res = await call(plan, 'plan', { body: sampleIncident(), headers: reader });
    expect(res.status).toBe(200);
    const { decision } = res.json;
    expect(decision.notes).toEqual(
      expect.arrayContaining([
        'user risk (ID Protection) unavailable for now (graph 503 serviceNotAvailable: down): what reads it waits for it',
        expect.stringMatching(/^privileged roles of adele.vance@contoso.com \(PIM\) unavailable for now/),
      ]),
    );
    expect(decision.rules.find((r: { ruleId: string }) => r.ruleId === 'compromised-identity')).toMatchObject({ matched: false, waiting: true });
    // Neither planned nor dropped: the account's containment waits for its risk, as an incident's would.
    expect(decision.waiting).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'disableUser',
          ruleId: 'compromised-identity',
          data: ['userRisk'],
          why: 'adele.vance@contoso.com: graph 503 serviceNotAvailable: down',
        }),
      ]),
    );
    expect(decision.summary).toMatch(/waiting for data$/);
  });

  it('tries a draft policy sent with the incident', async () => {
    const draft = 'version: 1\nmode: enforce\nrules:\n  - { id: draft-rule, when: { labels: [auto-remediate] }, then: [disableUser] }\n';
    const res = await call(plan, 'plan', { body: { incident: sampleIncident(), policy: draft }, headers: reader });
    expect(res.status).toBe(200);
    expect(res.json.decision.actions).toEqual([expect.objectContaining({ kind: 'disableUser', ruleId: 'draft-rule', mode: 'enforce' })]);
    expect(res.json.decision.policy.origin).toBe('the draft policy');
    // The digest is the file's, as `responder plan --policy` computes it: the text is not trimmed on the way.
    expect(res.json.decision.policy.digest).toBe(createHash('sha256').update(draft).digest('hex').slice(0, 12));
  });

  it('answers 400 naming the line of a bad draft policy', async () => {
    const res = await call(plan, 'plan', {
      body: { incident: sampleIncident(), policy: 'version: 1\nmode: enforce\nrules:\n  - { id: x, then: [explode] }\n' },
      headers: reader,
    });
    expect(res.status).toBe(400);
    expect(res.json.error.target).toBe('policy');
    expect(res.json.error.message).toContain('line 4: rules[0].then[0]: unknown action "explode"');
  });

  it('answers 400, not 500, to a draft policy that multiplies itself through YAML aliases', async () => {
    const aliases = ['a: &a [1, 2, 3]', ...Array.from({ length: 60 }, (_, i) => `k${i}: *a`)].join('\n');
    const res = await call(plan, 'plan', { body: { incident: sampleIncident(), policy: aliases }, headers: reader });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toMatch(/not valid YAML/);
  });

  it('needs Responder.Read', async () => {
    expect((await call(plan, 'plan', { body: sampleIncident() })).status).toBe(401);
    expect((await call(plan, 'plan', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) })).status).toBe(403);
  });

  it('answers 503 with the reasons when the deployed policy is invalid', async () => {
    engine.configure({ RESPONDER_POLICY: 'version: 1\nmode: sometimes\n' });
    const res = await call(plan, 'plan', { body: sampleIncident(), headers: await engine.bearer(['Responder.Read']) });
    expect(res.status).toBe(503);
    expect(res.json.error.message).toContain('line 2: mode: expected one of audit, enforce, got "sometimes"');
  });
});

describe('GET /api/health', () => {
  it('tells anyone only whether it is up', async () => {
    const res = await call(health, 'health', { method: 'GET' });
    expect(res).toMatchObject({ status: 200, json: { status: 'ok' } });
    expect(Object.keys(res.json)).toEqual(['status']);
  });

  it('shows details to Responder.Read', async () => {
    const res = await call(health, 'health', { method: 'GET', headers: reader });
    expect(res.json).toMatchObject({
      status: 'ok',
      policy: { origin: 'built-in default', rules: 4 },
      mode: { policy: 'audit', setting: 'enforce', effective: 'audit' },
      auth: 'entra',
      queue: { ready: 0 },
    });
    expect(res.json.policy.digest).toMatch(/^[0-9a-f]{12}$/);
  });

  it('runs the permission preflight on ?deep=true, for readers only', async () => {
    const res = await call(health, 'health', { method: 'GET', headers: reader, query: { deep: 'true' } });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('ok');
    expect(res.json.permissions).toMatchObject({
      ok: true,
      apis: [
        { api: 'graph', token: 'ok' },
        { api: 'defender', token: 'ok' },
        { api: 'arm', token: 'ok' },
      ],
    });
    expect(await (await call(health, 'health', { method: 'GET', query: { deep: 'true' } })).json).toEqual({ status: 'ok' });
  });

  it('refuses a bad token rather than treating it as anonymous', async () => {
    const res = await call(health, 'health', { method: 'GET', headers: { authorization: `Bearer ${engine.authority.unsignedToken(['Responder.Read'])}` } });
    expect(res.status).toBe(401);
  });

  it('answers 503 when the engine cannot act, with the reason for readers only', async () => {
    engine.configure({ RESPONDER_POLICY_PATH: '/nonexistent/policy.yaml' });
    expect((await call(health, 'health', { method: 'GET' })).json).toEqual({ status: 'unavailable' });
    const res = await call(health, 'health', { method: 'GET', headers: await engine.bearer(['Responder.Read']) });
    expect(res.status).toBe(503);
    expect(res.json.problem).toBe('cannot read policy file /nonexistent/policy.yaml: ENOENT');
  });
});
