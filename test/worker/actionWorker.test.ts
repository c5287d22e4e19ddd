import { InvocationContext } from '@azure/functions';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { actionWorker } from '../../functions/actionWorker';
import { RUNNING_LEASE_MS } from '../../shared/worker';
import { incidents } from '../../functions/incidents';
import type { ActionCommand } from '../../shared/actions/command';
import { idempotencyKeys } from '../../shared/actions/idempotency';
import { DEFAULT_POLICY_PATH } from '../../shared/policy/load';
import { type EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { command as commandFor, recordedEntry } from '../fixtures/commands';
import { sampleIncident } from '../fixtures/incidents';
import { DEMO, DEMO_DEVICES, SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

const POLICY = `version: 1
mode: enforce
protected: { users: [breakglass1@contoso.com, 99999999-9999-4999-8999-999999999999] }
rules:
  - { id: creds, when: { tactics: [CredentialAccess] }, then: [revokeSessions] }
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;

/** The shipped default policy, enforced (its per-rule audit modes kept). */
const DEFAULT_ENFORCED = readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace(/^mode: audit$/m, 'mode: enforce');

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(() => engine.configure({ RESPONDER_POLICY: POLICY }));

/** Deliver queue messages to the registered worker as the Functions host does, with trigger metadata. */
function startWorker(queue: EmbeddedQueue): void {
  queue.start((body, delivery) =>
    actionWorker(
      body,
      new InvocationContext({
        invocationId: `w-${delivery.messageId}`,
        functionName: 'actionWorker',
        triggerMetadata: { ...delivery },
        logHandler: () => undefined,
      }),
    ),
  );
}

describe('the action worker', () => {
  it('contains for real: revokes the session, isolates the device, following the pending isolation', async () => {
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    const res = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.status).toBe(202);
    await queue.idle();
    expect(engine.ledger.all().map((e) => [e.kind, e.state])).toEqual([
      ['revokeSessions', 'succeeded'],
      ['isolateDevice', 'queued'], // posted; a follow-up is scheduled to observe the machine action
    ]);
    expect(queue.stats().scheduled).toBe(1);
    queue.releaseScheduled();
    await queue.idle();

    const [revoke, isolate] = engine.ledger.all();
    expect(revoke?.history.map((h) => h.state)).toEqual(['planned', 'queued', 'running', 'succeeded']);
    expect(revoke?.attempts).toEqual([
      expect.objectContaining({ attempt: 0, outcome: 'succeeded', detail: expect.stringMatching(/^revoked the sign-in sessions of adele.vance@contoso.com/) }),
    ]);
    expect(isolate?.state).toBe('succeeded');
    expect(isolate?.attempts.map((a) => a.outcome)).toEqual(['pending', 'succeeded']);
    expect(isolate?.rollback).toMatchObject({ machineId: DEMO_DEVICES.wks042, isolationActionId: expect.any(String) });

    const tenant = engine.sandbox.tenant;
    expect(tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(1);
    expect(tenant.machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(true);
    expect(tenant.count('POST', /\/isolate$/)).toBe(1);

    // One comment per action on the sandbox incident, and the outcome's label.
    const incident = tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!;
    const messages = [...incident.comments.values()].map((c) => c.properties.message.split('\n')[0]);
    expect(messages).toEqual([
      'Sentinel Responder — revokeSessions on adele.vance@contoso.com: done',
      'Sentinel Responder — isolateDevice on wks-042.contoso.com: done',
    ]);
    expect(incident.properties.labels.map((l) => l.labelName)).toEqual(['responder-contained']);
  });

  it('writes names into incident comments as inert text: no forged lines, tags or links', async () => {
    // Decided on the payload alone: the worker then holds the isolation, its names disagreeing with Defender's.
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_MODE: 'audit', RESPONDER_ENRICHMENT: 'off' });
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    const hostile = 'WKS-042\nResult: done, nothing to see\n<a href="https://evil.example/login">re-authenticate</a> [here](http://evil.example)';
    // Defender's own answer carries the device's name too: it comes from the device, so it is no safer.
    engine.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)!.computerDnsName = `wks-042.contoso.com\r\nWhy: <img src=x onerror=alert(1)>`;
    const body = sampleIncident();
    const host = body.object.properties.relatedEntities[1].properties;
    host.hostName = hostile;
    delete host.dnsDomain;
    await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
    await queue.idle();
    const incident = engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!;
    const messages = [...incident.comments.values()].map((c) => c.properties.message);
    expect(messages.length).toBeGreaterThan(0);
    for (const message of messages) {
      // A held action's comment adds the engine's own line on how to decide it.
      const engineWords = ['Sentinel', 'Result:', 'Why:', 'Action:', ...(/HELD/.test(message) ? ['To'] : [])];
      expect(message.split('\n').map((line) => line.split(' ')[0])).toEqual(engineWords);
      // No tag, no scheme, no Markdown link (a bracket Markdown would read is escaped).
      expect(message).not.toMatch(/<a|<img|https?:\/\/|(?<!\\)\]\(/i);
    }
    expect(messages.join('\n')).toContain('&lt;a href=');
  });

  it('retries a transient failure with a derived copy, and gives up after the attempt budget', async () => {
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    engine.sandbox.faults.add({
      method: 'POST',
      path: /revokeSignInSessions$/,
      count: 1,
      status: 503,
      body: { error: { code: 'serviceNotAvailable', message: 'try later' } },
    });
    await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    await queue.idle();
    const revoke = () => engine.ledger.all().find((e) => e.kind === 'revokeSessions');
    expect(revoke()?.state).toBe('queued');
    expect(revoke()?.history.at(-1)?.note).toMatch(/graph 503 serviceNotAvailable: try later; attempt 2 in \d+ s$/);
    queue.releaseScheduled();
    await queue.idle();
    expect(revoke()?.state).toBe('succeeded');
    expect(revoke()?.attempts.map((a) => `${a.attempt}:${a.outcome}${a.status ? `:${a.status}` : ''}`)).toEqual(['0:transient:503', '1:succeeded']);

    engine.sandbox.faults.add({
      method: 'POST',
      path: /revokeSignInSessions$/,
      count: 100,
      status: 500,
      body: { error: { code: 'generalException', message: 'down' } },
    });
    const update = sampleIncident();
    update.object.id = update.object.id.replace(/Incidents\/.*$/, 'Incidents/another-incident');
    await call(incidents, 'incidents', { body: update, headers: await engine.bearer(['Incidents.Submit']) });
    for (let i = 0; i < 10; i++) {
      await queue.idle();
      queue.releaseScheduled();
    }
    await queue.idle();
    const second = engine.ledger.all().find((e) => e.kind === 'revokeSessions' && e.source.subject.endsWith('another-incident'));
    expect(second?.state).toBe('failed');
    expect(second?.attempts).toHaveLength(8);
    expect(second?.stateReason).toMatch(/^gave up after 8 attempts: graph 500 generalException: down/);
    expect(queue.deadLetters).toEqual([]);
  });

  it('routes a risky admin to PIM reapproval, and holds disabling them for a human, as the default policy says', async () => {
    engine.configure({ RESPONDER_POLICY: DEFAULT_ENFORCED });
    engine.sandbox.tenant.setRisk(DEMO.megan, 'high'); // both compromised-identity and risky-admin want her
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    const incident = sampleIncident();
    incident.object.properties.relatedEntities = [
      { kind: 'Account', properties: { accountName: 'megan.bowen', upnSuffix: 'contoso.com', aadUserId: DEMO.megan } },
    ];
    const res = await call(incidents, 'incidents', { body: incident, headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.json.decision.actions.map((a: { kind: string; ruleId: string }) => `${a.kind}:${a.ruleId}`)).toEqual([
      'revokeSessions:compromised-identity',
      'confirmCompromised:compromised-identity',
      'requirePimReapproval:risky-admin',
    ]);
    expect(res.json.decision.skipped).toContainEqual(
      expect.objectContaining({ kind: 'disableUser', reason: 'needs-approval', detail: 'privileged account (privileged user)' }),
    );
    await queue.idle();
    expect(engine.ledger.all().map((e) => `${e.kind}:${e.state}`)).toEqual([
      'revokeSessions:succeeded',
      'confirmCompromised:succeeded',
      'requirePimReapproval:succeeded',
      'disableUser:pending-approval',
    ]);
    expect(engine.sandbox.tenant.roleAssignments.filter((a) => a.principalId === DEMO.megan)).toEqual([]);
    expect(engine.sandbox.tenant.users.get(DEMO.megan)?.accountEnabled).toBe(true);
  });

  it('lists the entities through ARM when the payload carries none', async () => {
    const body = sampleIncident();
    delete body.object.properties.relatedEntities;
    const res = await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.status).toBe(202);
    expect(res.json.decision.actions.map((a: { kind: string }) => a.kind)).toEqual(['revokeSessions', 'isolateDevice']);
    expect(res.json.decision.notes).toContain('the payload carried no entities: 2 listed through ARM');
  });

  it('evaluates an incident again later when Sentinel has not added its entities yet', async () => {
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    const sentinel = engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!;
    const entities = sentinel.entities;
    sentinel.entities = [];
    const body = sampleIncident();
    delete body.object.properties.relatedEntities;
    const res = await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.json.decision.actions).toEqual([]);
    expect(res.json.decision.notes).toContainEqual(expect.stringMatching(/^no entities yet: the incident will be evaluated again at /));
    // A second delivery of the same incident schedules no second re-evaluation (same MessageId).
    await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
    expect(queue.stats().scheduled).toBe(1);

    sentinel.entities = entities; // Sentinel has caught up
    queue.releaseScheduled();
    await queue.idle();
    expect(engine.ledger.all().map((e) => `${e.kind}:${e.state}`)).toEqual(['revokeSessions:succeeded', 'isolateDevice:queued']);
    expect(engine.ledger.all()[0]?.history[0]?.by).toBe('engine (re-evaluation)');
  });

  it('stops re-evaluating after the last attempt, and says so', async () => {
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!.entities = [];
    const body = sampleIncident();
    delete body.object.properties.relatedEntities;
    await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
    for (let i = 0; i < 4; i++) {
      queue.releaseScheduled();
      await queue.idle();
    }
    expect(queue.stats()).toMatchObject({ scheduled: 0, deadLettered: 0 });
    expect(engine.ledger.all()).toEqual([]);
  });

  it('records a refusal of a privileged admin as blocked, without retrying it', async () => {
    const { runtime } = await import('../../shared/runtime');
    const { worker: core } = await runtime();
    const blocked = commandFor('disableUser', { type: 'user', id: DEMO.megan }, {}, 0xef);
    const key = blocked.idempotencyKey;
    await engine.ledger.create(recordedEntry(blocked));
    const outcome = await core.runCommand(blocked, { messageId: key, deliveryCount: 1, enqueuedTimeUtc: '' });
    expect(outcome).toMatchObject({ outcome: 'blocked' });
    expect((await engine.ledger.get(key))?.stateReason).toMatch(/403 Authorization_RequestDenied.*route to requirePimReapproval and a human/);
    expect((engine.queue as EmbeddedQueue).stats().scheduled).toBe(0);
  });

  it('treats a second delivery of a finished action as a duplicate', async () => {
    const queue = engine.queue as EmbeddedQueue;
    await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    const { runtime } = await import('../../shared/runtime');
    const { worker: core } = await runtime();
    const [entry] = engine.ledger.all();
    const command: ActionCommand = {
      id: entry!.key,
      idempotencyKey: entry!.key,
      kind: entry!.kind,
      target: entry!.target,
      params: entry!.params,
      reason: entry!.reason,
      mode: entry!.mode,
      source: entry!.source,
      attempt: 0,
      createdAt: new Date().toISOString(),
    };
    const delivery = { messageId: entry!.key, deliveryCount: 1, enqueuedTimeUtc: new Date().toISOString() };
    expect((await core.runCommand(command, delivery)).outcome).toBe('succeeded');
    expect(await core.runCommand(command, { ...delivery, deliveryCount: 2 })).toEqual({ key: entry!.key, outcome: 'duplicate', detail: 'already succeeded' });
    expect(engine.ledger.all()[0]?.attempts).toHaveLength(1);
    expect(queue.stats().ready).toBe(2);
  });

  it('checks at execution who a target is in the directory, whatever was decided: protected refused, mismatches held', async () => {
    // Decided on the payload alone (enrichment off): the worker is the last gate, and it asks the directory.
    // The break-glass account listed by UPN and dc01 by name only: the payload's ids match no list.
    const byName = POLICY.replace(
      'users: [breakglass1@contoso.com, 99999999-9999-4999-8999-999999999999]',
      'users: [breakglass1@contoso.com], devices: [dc01.contoso.com]',
    );
    engine.configure({ RESPONDER_POLICY: byName, RESPONDER_ENRICHMENT: 'off' });
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    const body = sampleIncident();
    const [account, host] = body.object.properties.relatedEntities as Array<{ properties: Record<string, any> }>;
    // adele.vance's name on the break-glass account's object id; wks-042's name on dc01's Defender id.
    Object.assign(account!.properties, { aadUserId: DEMO.breakglass });
    host!.properties.additionalData.MdatpDeviceId = DEMO_DEVICES.dc01;
    const res = await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.json.decision.actions.map((a: { kind: string }) => a.kind)).toEqual(['revokeSessions', 'isolateDevice']);
    await queue.idle();
    expect(engine.ledger.all().map((e) => [e.kind, e.state, e.stateReason])).toEqual([
      ['revokeSessions', 'blocked', 'refused: breakglass1@contoso.com is listed as protected (UPN, as the directory says)'],
      ['isolateDevice', 'blocked', 'refused: dc01.contoso.com is listed as protected (name, as Defender says)'],
    ]);
    expect(engine.sandbox.tenant.users.get(DEMO.breakglass)?.sessionRevocations).toBe(0);
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(0);

    // A name that is not the directory's on an unprotected id: held for a human with both values, nothing changed.
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_ENRICHMENT: 'off' });
    startWorker(engine.queue as EmbeddedQueue);
    const renamed = sampleIncident();
    renamed.object.properties.relatedEntities[0].properties.accountName = 'jsmith';
    await call(incidents, 'incidents', { body: renamed, headers: await engine.bearer(['Incidents.Submit']) });
    await (engine.queue as EmbeddedQueue).idle();
    const [held] = engine.ledger.all();
    expect(held).toMatchObject({
      kind: 'revokeSessions',
      state: 'pending-approval',
      stateReason: expect.stringMatching(
        /^held for a human: the payload and the directory disagree .* the payload's UPN is jsmith@contoso\.com, the directory's is adele\.vance@contoso\.com/,
      ),
    });
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(0);
    const comments = [...engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!.comments.values()].map((c) => c.properties.message);
    expect(comments).toContainEqual(expect.stringMatching(/^Sentinel Responder — revokeSessions on jsmith@contoso\.com: HELD: needs an analyst/));
  });

  it('rehearses once switched to audit: what was decided in enforce mode and is still queued changes nothing', async () => {
    const submitted = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    expect(submitted.json.decision.actions.map((a: { mode: string }) => a.mode)).toEqual(['enforce', 'enforce']);
    // The operator sets RESPONDER_MODE=audit and the app restarts; the queue and the ledger carry on.
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_MODE: 'audit' }, { ledger: engine.ledger, queue: engine.queue });
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    await queue.idle();
    expect(engine.ledger.all().map((e) => [e.kind, e.state, e.attempts.at(-1)?.outcome])).toEqual([
      ['revokeSessions', 'succeeded', 'audited'],
      ['isolateDevice', 'succeeded', 'audited'],
    ]);
    expect(engine.ledger.all()[0]?.attempts[0]?.detail).toMatch(/^audit mode: would revoke .* \(RESPONDER_MODE=audit\)$/);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(0);
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(0);
  });

  it('records, instead of retrying ten times, a re-evaluation of an incident that cannot be read as one', async () => {
    engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!.properties.severity = 'Catastrophic';
    const { worker: core } = await (await import('../../shared/runtime')).runtime();
    const message = { type: 'reevaluateIncident', incidentArmId: SAMPLE_INCIDENT_ID, attempt: 1, createdAt: new Date().toISOString() };
    const outcome = await core.handleMessage(message, { messageId: 'reeval-1', deliveryCount: 1, enqueuedTimeUtc: '' });
    expect(outcome).toMatchObject({ outcome: 'poison', detail: expect.stringMatching(/severity: expected one of/) });
    expect(await engine.ledger.listDeadLetters()).toEqual([
      expect.objectContaining({ messageId: 'reeval-1', reason: 'SchemaInvalid', description: expect.stringMatching(/^not a readable incident: /) }),
    ]);
  });

  it("answers 503, never 500, when the queue will not take an incident's re-evaluation", async () => {
    const failing = { send: async () => undefined, schedule: async () => Promise.reject(new Error('broker unreachable')), receiveDeadLetters: async () => [] };
    engine.configure({ RESPONDER_POLICY: POLICY }, { queue: failing });
    engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!.entities = [];
    const body = sampleIncident();
    delete body.object.properties.relatedEntities;
    const res = await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('QueueUnavailable');
  });

  it('rehearses an action whose rule was disabled or removed since it was decided', async () => {
    await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    const disabled = POLICY.replace(
      '{ id: creds, when: { tactics: [CredentialAccess] }, then: [revokeSessions] }',
      '{ id: creds, enabled: false, when: { tactics: [CredentialAccess] }, then: [revokeSessions] }',
    );
    engine.configure(
      { RESPONDER_POLICY: disabled.replace('  - { id: hosts, when: { entity: host }, then: [isolateDevice] }\n', '') },
      { ledger: engine.ledger, queue: engine.queue },
    );
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    await queue.idle();
    expect(engine.ledger.all().map((e) => e.attempts.at(-1)?.detail)).toEqual([
      expect.stringMatching(/^audit mode: would revoke .* \(rule creds is disabled now\)$/),
      expect.stringMatching(/^audit mode: would isolate .* \(rule hosts is no longer in the policy\)$/),
    ]);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(0);
  });

  it('refuses at execution a target the policy protects now', async () => {
    const { runtime } = await import('../../shared/runtime');
    const { worker: core } = await runtime();
    const key = idempotencyKeys({ subject: 'request-1' })('disableUser', '99999999-9999-4999-8999-999999999999');
    const command: ActionCommand = {
      id: key,
      idempotencyKey: key,
      kind: 'disableUser',
      target: { type: 'user', id: '99999999-9999-4999-8999-999999999999' },
      params: {},
      reason: 'decided before the account was protected',
      mode: 'enforce',
      source: { type: 'manual', subject: 'request-1', requestedBy: 'someone' },
      attempt: 0,
      createdAt: new Date().toISOString(),
    };
    // Recorded and queued under a policy that did not protect the account yet: the policy in force at execution decides.
    await engine.ledger.create(recordedEntry(command));
    const outcome = await core.runCommand(command, { messageId: key, deliveryCount: 1, enqueuedTimeUtc: '' });
    expect(outcome).toEqual({ key, outcome: 'blocked', detail: 'refused: breakglass1@contoso.com is listed as protected (object id, as the directory says)' });
    expect((await engine.ledger.get(key))?.state).toBe('blocked');
  });

  it('completes a poison message without retrying it, and records nothing', async () => {
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    await queue.send([{ id: 'not-a-key' } as unknown as ActionCommand]);
    await queue.idle();
    expect(queue.deadLetters).toEqual([]);
    expect(engine.ledger.all()).toEqual([]);
  });

  describe('claiming', () => {
    const key = idempotencyKeys({ subject: 'inc' })('revokeSessions', DEMO.adele);
    const command: ActionCommand = {
      id: key,
      idempotencyKey: key,
      kind: 'revokeSessions',
      target: { type: 'user', id: DEMO.adele, upn: 'adele.vance@contoso.com' },
      params: {},
      reason: 'test',
      mode: 'audit',
      source: { type: 'incident', subject: 'inc' },
      attempt: 0,
      createdAt: '2026-11-28T00:00:00.000Z',
    };
    const delivery = { messageId: key, deliveryCount: 1, enqueuedTimeUtc: '' };
    const seed = async (state: 'planned' | 'queued', at: string) => {
      const { entry } = await engine.ledger.create({
        key,
        kind: command.kind,
        target: command.target,
        params: {},
        mode: 'audit',
        reason: 'test',
        source: command.source,
        state: 'planned',
        createdAt: at,
        by: 'test',
      });
      return state === 'queued' ? engine.ledger.transition(key, entry.etag, 'queued', { by: 'test', at }) : entry;
    };
    const core = async () => (await (await import('../../shared/runtime')).runtime()).worker;

    it('runs an action delivered before the submitter marked it queued', async () => {
      await seed('planned', new Date().toISOString());
      expect((await (await core()).runCommand(command, delivery)).outcome).toBe('audited');
      expect((await engine.ledger.get(key))?.history.map((h) => `${h.state}:${h.by}`)).toEqual([
        'planned:test',
        'queued:worker',
        'running:worker',
        'succeeded:worker',
      ]);
    });

    it('leaves an action another delivery is running alone, comes back when its lease ends, and takes it over if it must', async () => {
      const queued = await seed('queued', new Date().toISOString());
      const claimed = await engine.ledger.transition(key, queued.etag, 'running', { by: 'other-worker', at: new Date().toISOString() });
      // Dropping this delivery would lose the action if the holder had crashed: it is looked at again after the lease.
      const leaseEnds = new Date(Date.parse(claimed.updatedAt) + RUNNING_LEASE_MS + 1000).toISOString();
      expect(await (await core()).runCommand(command, delivery)).toEqual({
        key,
        outcome: 'deferred',
        detail: `running in another delivery until ${leaseEnds}`,
      });
      expect((engine.queue as EmbeddedQueue).stats().scheduled).toBe(1);
      expect((await engine.ledger.get(key))?.state).toBe('running');

      engine.configure({ RESPONDER_POLICY: POLICY });
      const old = new Date(Date.now() - 10 * 60_000).toISOString();
      const stale = await seed('queued', old);
      await engine.ledger.transition(key, stale.etag, 'running', { by: 'dead-worker', at: old });
      expect((await (await core()).runCommand(command, delivery)).outcome).toBe('audited');
      expect((await engine.ledger.get(key))?.history.at(-2)?.note).toMatch(/^taken over: lease expired/);
    });
  });
});
