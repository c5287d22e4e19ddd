import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { incidents } from '../../functions/incidents';
import type { ActionCommand } from '../../shared/actions/command';
import type { ActionQueue } from '../../shared/queue/queue';
import { type EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { buildIncident, sampleIncident } from '../fixtures/incidents';
import { DEMO, DEMO_DEVICES } from '../../sandbox/tenant';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** A policy that plans something for the sample incident without enrichment: revoke on credential access. */
const POLICY = `version: 1
mode: enforce
protected: { users: [breakglass1@contoso.com] }
risk: { severity: { High: 40 } }
rules:
  - { id: creds, when: { tactics: [CredentialAccess] }, then: [revokeSessions] }
  - { id: endpoint, when: { entity: host, severity: [High] }, then: [{ isolateDevice: { isolationType: Selective } }] }
`;

let engine: EngineUnderTest;
let submit: Record<string, string>;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(async () => {
  engine.configure({ RESPONDER_POLICY: POLICY });
  submit = await engine.bearer(['Incidents.Submit']);
});

const post = (body: unknown, headers: Record<string, string> = submit) => call(incidents, 'incidents', { body, headers });

describe('POST /api/incidents', () => {
  it('answers 202 with the decision, records and enqueues each action', async () => {
    const res = await post(sampleIncident());
    expect(res.status).toBe(202);
    expect(res.json.decision.actions.map((a: { kind: string }) => a.kind)).toEqual(['revokeSessions', 'isolateDevice']);
    expect(res.json.decision.rules.map((r: { matched: boolean }) => r.matched)).toEqual([true, true]);
    expect(res.json.recorded).toEqual([
      expect.objectContaining({ kind: 'revokeSessions', target: 'adele.vance@contoso.com', state: 'queued', new: true }),
      expect.objectContaining({ kind: 'isolateDevice', target: 'wks-042.contoso.com', state: 'queued', new: true }),
    ]);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(2);
    const entry = await engine.ledger.get(res.json.recorded[0].key);
    expect(entry).toMatchObject({ state: 'queued', mode: 'enforce', source: { type: 'incident', ruleId: 'creds', incidentArmId: sampleIncident().object.id } });
    expect(entry?.history.map((h) => h.state)).toEqual(['planned', 'queued']);
  });

  it('enqueues nothing new when the same incident arrives again (create, then update)', async () => {
    const first = await post(sampleIncident());
    const update = sampleIncident();
    update.objectEventType = 'Update';
    update.object.properties.status = 'Active';
    const second = await post(update);
    expect(second.status).toBe(202);
    expect(second.json.decision.actions).toEqual([]);
    expect(second.json.decision.skipped.map((s: { reason: string }) => s.reason)).toEqual(['already-done', 'already-done']);
    expect(second.json.recorded.map((r: { key: string; new: boolean }) => [r.key, r.new])).toEqual(
      first.json.recorded.map((r: { key: string }) => [r.key, false]),
    );
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(2);
  });

  it('keeps the first decision on an action: one audited stays audited when the policy turns to enforce', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY.replace('mode: enforce', 'mode: audit') });
    const first = await post(sampleIncident());
    expect(first.json.decision.actions.map((a: { mode: string }) => a.mode)).toEqual(['audit', 'audit']);
    // The app restarts with the new policy; the ledger and the queue are the same.
    engine.configure({ RESPONDER_POLICY: POLICY }, { ledger: engine.ledger, queue: engine.queue });
    const update = sampleIncident();
    update.objectEventType = 'Update';
    const second = await post(update);
    expect(second.json.decision.actions).toEqual([]);
    expect(second.json.decision.skipped.map((s: { reason: string; mode: string; detail: string }) => [s.reason, s.mode, s.detail])).toEqual([
      ['already-done', 'enforce', expect.stringMatching(/^recorded queued in audit mode at /)],
      ['already-done', 'enforce', expect.stringMatching(/^recorded queued in audit mode at /)],
    ]);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(2);
  });

  it('plans only what is new when an update brings more entities', async () => {
    const first = await post(sampleIncident());
    const update = sampleIncident();
    update.objectEventType = 'Update';
    update.object.properties.relatedEntities.push({
      kind: 'Account',
      properties: { accountName: 'megan.bowen', upnSuffix: 'contoso.com', aadUserId: '2b3c4d5e-0000-4000-8000-000000000042' },
    });
    const second = await post(update);
    expect(second.json.decision.actions.map((a: { kind: string; target: { upn: string } }) => `${a.kind} ${a.target.upn}`)).toEqual([
      'revokeSessions megan.bowen@contoso.com',
    ]);
    expect(second.json.decision.skipped.map((s: { reason: string }) => s.reason)).toEqual(['already-done', 'already-done']);
    expect(engine.ledger.all()).toHaveLength(first.json.recorded.length + 1);
  });

  it('never answers a random body with a 5xx', async () => {
    const base = sampleIncident();
    const paths = [
      'object',
      'object.properties',
      'object.properties.relatedEntities',
      'object.properties.relatedEntities.0.properties',
      'object.properties.severity',
      'object.id',
    ];
    const bodies = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string(),
      fc.record({ path: fc.constantFrom(...paths), value: fc.jsonValue() }).map(({ path, value }) => {
        const body = structuredClone(base);
        const keys = path.split('.');
        let node: any = body;
        for (const key of keys.slice(0, -1)) node = node[key];
        node[keys.at(-1) as string] = value;
        return JSON.stringify(body);
      }),
    );
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(bodies, async (text) => {
        const res = await call(incidents, 'incidents', { body: text, headers: { ...submit, 'content-type': 'application/json' } });
        statuses.add(res.status);
        expect([202, 400]).toContain(res.status);
        if (res.status === 400) expect(res.json.error.message.length).toBeGreaterThan(5);
      }),
      { numRuns: 400, seed: 11 },
    );
    expect(statuses).toEqual(new Set([202, 400]));
  });

  it('plans each action once when deliveries race', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => post(sampleIncident())));
    expect(results.every((r) => r.status === 202)).toBe(true);
    expect(engine.ledger.all()).toHaveLength(2);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(2);
  });

  it('refuses a protected user the directory names, whatever name the payload gives them', async () => {
    // The break-glass account's object id under another user's name: the directory says who it is.
    const body = sampleIncident();
    Object.assign(body.object.properties.relatedEntities[0].properties, { aadUserId: DEMO.breakglass, accountName: 'adele.vance' });
    const res = await post(body);
    expect(res.json.decision.skipped).toEqual([
      expect.objectContaining({
        kind: 'revokeSessions',
        reason: 'protected',
        detail: 'breakglass1@contoso.com is listed as protected (UPN, as the directory says)',
      }),
    ]);
    expect(res.json.recorded).toContainEqual(expect.objectContaining({ kind: 'revokeSessions', state: 'blocked' }));
    expect(engine.sandbox.tenant.users.get(DEMO.breakglass)?.sessionRevocations).toBe(0);
  });

  it('refuses a protected device Defender names, whatever host name the payload gives it; holds a protected name on another device', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY.replace('users: [breakglass1@contoso.com]', 'users: [breakglass1@contoso.com], devices: [dc01.contoso.com]') });
    // WKS-042 by name, dc01 by Defender id: Defender says it is dc01, which is protected.
    const disguised = sampleIncident();
    disguised.object.properties.relatedEntities[1].properties.additionalData.MdatpDeviceId = DEMO_DEVICES.dc01;
    const refused = await post(disguised);
    expect(refused.json.decision.skipped).toContainEqual(
      expect.objectContaining({ kind: 'isolateDevice', reason: 'protected', detail: 'dc01.contoso.com is listed as protected (name, as Defender says)' }),
    );
    // The reverse: the protected name on the attacker's own machine neither spares it nor isolates it unseen.
    const sheltered = sampleIncident();
    Object.assign(sheltered.object.properties.relatedEntities[1].properties, { hostName: 'DC01', friendlyName: 'DC01' });
    sheltered.object.name = sheltered.object.id = sheltered.object.id.replace(/Incidents\/.*$/, 'Incidents/00000000-0000-4000-8000-0000000000d1');
    const held = await post(sheltered);
    expect(held.json.decision.skipped).toContainEqual(
      expect.objectContaining({
        kind: 'isolateDevice',
        reason: 'needs-approval',
        detail:
          "the payload and Defender disagree on which device this is: the payload's host name is dc01.contoso.com, Defender's is wks-042.contoso.com; the payload's host name is dc01, Defender's is wks-042.contoso.com; the payload's name is protected",
      }),
    );
    expect(held.json.recorded).toContainEqual(expect.objectContaining({ kind: 'isolateDevice', state: 'pending-approval' }));
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(0);
  });

  it('holds for a human a payload that names a protected user on someone else: neither is acted on', async () => {
    const body = sampleIncident();
    body.object.properties.relatedEntities[0].properties.accountName = 'BreakGlass1';
    const res = await post(body);
    expect(res.json.decision.skipped).toEqual([
      expect.objectContaining({
        kind: 'revokeSessions',
        reason: 'needs-approval',
        detail: expect.stringMatching(
          /^the payload and the directory disagree on who adele\.vance@contoso\.com is: .*the payload's UPN is breakglass1@contoso\.com, the directory's is adele\.vance@contoso\.com; the payload's UPN is protected$/,
        ),
      }),
    ]);
    expect(res.json.recorded).toContainEqual(expect.objectContaining({ kind: 'revokeSessions', state: 'pending-approval' }));
  });

  it('answers 503 when the queue refuses, and a retry of the same incident gets the actions through', async () => {
    const failing: ActionQueue = {
      send: async () => Promise.reject(new Error('broker unreachable')),
      schedule: async () => undefined,
      receiveDeadLetters: async () => [],
    };
    engine.configure({ RESPONDER_POLICY: POLICY }, { queue: failing });
    const ledger = engine.ledger;
    const res = await post(sampleIncident());
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('10');
    expect(res.json.error.code).toBe('QueueUnavailable');
    expect(ledger.all().map((e) => e.state)).toEqual(['planned', 'planned']);
    expect(await ledger.countSince('revokeSessions', '1970-01-01T00:00:00Z')).toBe(0);

    // The relay retries; the queue is back. Same ledger, planned entries are sent again.
    const sent: ActionCommand[] = [];
    const { configureRuntime } = await import('../../shared/runtime');
    configureRuntime({ ledger, queue: { send: async (c) => void sent.push(...c), schedule: async () => undefined, receiveDeadLetters: async () => [] } });
    const retry = await post(sampleIncident());
    expect(retry.status).toBe(202);
    expect(sent.map((c) => c.kind)).toEqual(['revokeSessions', 'isolateDevice']);
    expect(ledger.all().map((e) => e.state)).toEqual(['queued', 'queued']);
  });

  it('ends an action its queue could not carry as failed, with the reason, instead of sending poison', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_ENRICHMENT: 'off' });
    // A signal built by hand, past the normalizer that bounds names where they enter: the engine checks again.
    const { engine: core } = await (await import('../../shared/runtime')).runtime();
    const { normalizeSentinelPayload } = await import('../../shared/signals/sentinel');
    const signal = normalizeSentinelPayload(sampleIncident());
    const host = signal.entities.find((e) => e.kind === 'host') as { hostName?: string };
    host.hostName = 'h'.repeat(300);
    const { recorded } = await core.submit(signal, 'test');
    expect(recorded.map((r) => [r.kind, r.state])).toEqual([
      ['isolateDevice', 'failed'],
      ['revokeSessions', 'queued'],
    ]);
    const failed = await engine.ledger.get(recorded[0]!.key);
    expect(failed?.stateReason).toMatch(/^cannot be queued: target\.hostName: /);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(1);
  });

  it('handles a 200-entity, 50-alert incident', async () => {
    // Decided on the payload (its made-up users and devices are not in the sandbox): the point here is the size.
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_ENRICHMENT: 'off' });
    const res = await post(buildIncident({ accounts: 100, hosts: 60, others: 40, alerts: 50 }));
    expect(res.status).toBe(202);
    expect(res.json.decision.actions).toHaveLength(160);
  });

  describe('bad input', () => {
    it.each([
      ['invalid JSON', '{"object": ', 400, /^body: invalid JSON/],
      ['an empty body (Logic Apps "Run trigger")', '', 400, /^body: is empty: .*Run trigger/],
      ['whitespace only', '   \n', 400, /is empty/],
      ['a JSON array', '[1,2]', 400, /expected a JSON object/],
      ['a prototype-polluting key', '{"__proto__": {"admin": true}, "object": {}}', 400, /the key "__proto__" is not allowed/],
      ['an escaped prototype key', '{"\\u005f_proto__": {}}', 400, /the key "__proto__" is not allowed/],
      // The word "constructor" makes parseJson look for prototype keys, walking every level.
      ['100,000 nested arrays', `{"note": "constructor", "deep": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`, 400, /^body: nested too deeply/],
    ])('rejects %s', async (_name, body, status, message) => {
      const res = await call(incidents, 'incidents', { body, headers: { ...submit, 'content-type': 'application/json' } });
      expect(res.status).toBe(status);
      expect(res.json.error.message).toMatch(message);
      expect(res.json.error.invocationId).toBe('test-invocation');
    });

    it('names the offending field of a schema error', async () => {
      const body = sampleIncident();
      body.object.properties.severity = 'Sev1';
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(res.json.error).toMatchObject({
        code: 'BadRequest',
        target: 'object.properties.severity',
        message: 'object.properties.severity: expected one of Informational, Low, Medium, High, got "Sev1"',
      });
    });

    it('answers 415 to a body that is not declared as JSON', async () => {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
        const res = await call(incidents, 'incidents', { body: JSON.stringify(sampleIncident()), headers: { ...submit, 'content-type': type } });
        expect(res.status).toBe(415);
        expect(res.json.error.message).toContain(type);
      }
      const none = await call(incidents, 'incidents', { body: '{}', headers: submit });
      expect(none.status).toBe(415);
    });

    it('reads the body as UTF-8: a byte order mark is ignored, other bytes and charsets are refused precisely', async () => {
      const json = JSON.stringify(sampleIncident());
      const bom = await call(incidents, 'incidents', {
        body: new Uint8Array([0xef, 0xbb, 0xbf, ...Buffer.from(json)]),
        headers: { ...submit, 'content-type': 'application/json' },
      });
      expect(bom.status).toBe(202);

      const latin1 = Buffer.from(json.replace('WKS-042', 'WKS-042 caf\u00e9'), 'latin1'); // é as one byte: not UTF-8
      const notUtf8 = await call(incidents, 'incidents', { body: new Uint8Array(latin1), headers: { ...submit, 'content-type': 'application/json' } });
      expect([notUtf8.status, notUtf8.json.error.message]).toEqual([400, 'body: is not UTF-8 text: JSON must be sent as UTF-8']);

      const utf16 = await call(incidents, 'incidents', { body: json, headers: { ...submit, 'content-type': 'application/json; charset=utf-16' } });
      expect([utf16.status, utf16.json.error.message]).toEqual([415, 'JSON must be sent as UTF-8, got charset="utf-16"']);
    });

    it('accepts JSON with a charset and vendor JSON types', async () => {
      const res = await call(incidents, 'incidents', {
        body: JSON.stringify(sampleIncident()),
        headers: { ...submit, 'content-type': 'application/json; charset=utf-8' },
      });
      expect(res.status).toBe(202);
    });

    it('answers 413 above the body cap, by declared length and by actual length', async () => {
      engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_MAX_BODY_BYTES: '4096' });
      const big = JSON.stringify(buildIncident({ accounts: 30, hosts: 0 }));
      const declared = await call(incidents, 'incidents', {
        body: big,
        headers: { ...submit, 'content-type': 'application/json', 'content-length': String(big.length) },
      });
      expect(declared.status).toBe(413);
      const undeclared = await call(incidents, 'incidents', { body: big, headers: { ...submit, 'content-type': 'application/json' } });
      expect(undeclared.status).toBe(413);
      expect(undeclared.json.error.message).toBe('the body exceeds 4096 bytes (RESPONDER_MAX_BODY_BYTES)');
    });

    it('answers 405 with Allow to other methods', async () => {
      const res = await call(incidents, 'incidents', { method: 'GET', headers: submit });
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe('POST');
    });
  });

  describe('authentication and authorization', () => {
    it('answers 401 without credentials, before reading the body', async () => {
      const res = await call(incidents, 'incidents', { body: 'not even json', headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
    });

    it('answers 403 to a valid token without the Incidents.Submit role', async () => {
      const res = await post(sampleIncident(), await engine.bearer(['Responder.Read']));
      expect(res.status).toBe(403);
      expect(res.json.error.message).toBe('the caller lacks the app role Incidents.Submit (has Responder.Read)');
    });

    it('answers 503, not 401, when authentication is not configured', async () => {
      engine.configure({ RESPONDER_POLICY: POLICY, AZURE_TENANT_ID: '' });
      const res = await post(sampleIncident());
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe('AuthUnavailable');
    });
  });
});
