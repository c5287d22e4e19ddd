import { InvocationContext, type Timer } from '@azure/functions';
import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { actionWorker } from '../../functions/actionWorker';
import { deadLetterReconciler } from '../../functions/deadLetterReconciler';
import { incidents } from '../../functions/incidents';
import { replayAction } from '../../functions/actions';
import { listDeadLetters } from '../../functions/deadLetters';
import type { ActionLedger, LedgerEntry } from '../../shared/ledger/ledger';
import type { ServiceBusActionQueue } from '../../shared/queue/serviceBusQueue';
import { runtime } from '../../shared/runtime';
import { command as commandFor, recordedEntry } from '../fixtures/commands';
import { sampleIncident } from '../fixtures/incidents';
import { ServiceBusEmulator } from '../../sandbox/serviceBus';
import { DEMO, SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { ANALYST_A, analystBearer } from '../support/analysts';
import { Azurite } from '../support/azurite';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/**
 * The production pipeline end to end, every hop on its real client: the incidents function sends through
 * @azure/service-bus to the AMQP emulator, the worker is driven from it with the Functions trigger's semantics,
 * the ledger is Table storage on Azurite, and the actions land on the sandbox tenant over HTTPS.
 */
const POLICY = `version: 1
mode: enforce
rules:
  - { id: creds, when: { tactics: [CredentialAccess] }, then: [revokeSessions] }
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;

let engine: EngineUnderTest;
let broker: ServiceBusEmulator;
let azurite: Azurite;
let table = 0;

beforeAll(async () => {
  [engine, broker, azurite] = await Promise.all([
    EngineUnderTest.start(),
    new ServiceBusEmulator({ lockDurationMs: 3000, maxDeliveryCount: 3 }).start(),
    Azurite.start(),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([engine.stop(), broker.stop(), azurite.stop()]);
});
beforeEach(async () => {
  // A fresh queue and table per test: the emulator and Azurite keep running.
  broker.createQueue('actions');
  engine.configure(
    {
      RESPONDER_POLICY: POLICY,
      ServiceBusConnection: broker.connectionString,
      AzureWebJobsStorage: azurite.connectionString,
      RESPONDER_LEDGER_TABLE: `pipeline${++table}`,
    },
    { fromSettings: true },
  );
  const { queue } = await runtime();
  (queue as ServiceBusActionQueue).start((body, delivery) =>
    actionWorker(body, new InvocationContext({ invocationId: `w-${delivery.messageId}`, functionName: 'actionWorker', triggerMetadata: { ...delivery } })),
  );
  return async () => (queue as ServiceBusActionQueue).stop();
});

const analyst = (roles: string[]) => analystBearer(engine, roles, ANALYST_A, 'Analyst A');

/** Wait until every ledger entry is final, releasing scheduled follow-ups as the broker's clock would. */
async function settled(ledger: ActionLedger, expected: number, timeoutMs = 20_000): Promise<LedgerEntry[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entries = await ledger.list();
    if (
      entries.length >= expected &&
      entries.every((e) => ['succeeded', 'failed', 'blocked', 'dead-lettered'].includes(e.state)) &&
      broker.isDrained('actions')
    )
      return entries;
    if (Date.now() > deadline)
      throw new Error(`not settled: ${entries.map((e) => `${e.kind}:${e.state}`).join(', ')} ${JSON.stringify(broker.stats('actions'))}`);
    broker.releaseScheduled();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('the Service Bus pipeline (AMQP emulator, Azurite, sandbox tenant)', () => {
  it('answers 202 once the commands are on the broker, then contains: each non-idempotent call made once', async () => {
    const res = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.json).toMatchObject({ decision: expect.anything() });
    expect(res.status).toBe(202);
    const { ledger } = await runtime();
    const entries = await settled(ledger, 2);
    expect(entries.map((e) => `${e.kind}:${e.state}`).sort()).toEqual(['isolateDevice:succeeded', 'revokeSessions:succeeded']);
    const tenant = engine.sandbox.tenant;
    expect(tenant.count('POST', /\/isolate$/)).toBe(1);
    expect(tenant.count('POST', /revokeSignInSessions$/)).toBe(1);
    // Message ids on the wire: the idempotency key, then derived ids for the follow-up.
    const ids = broker.accepted.filter((m) => m.queue === 'actions').map((m) => m.messageId);
    expect(ids).toEqual(expect.arrayContaining(entries.map((e) => e.key)));
    expect(ids.some((id) => /:f1$/.test(id))).toBe(true);
    expect(tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())?.comments.size).toBe(2);

    // The relay retries the same incident: accepted again, nothing sent twice.
    const replay = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    expect(replay.status).toBe(202);
    await settled(ledger, 2);
    expect(tenant.count('POST', /\/isolate$/)).toBe(1);
  });

  it('answers 503 when the broker refuses the send, so the relay retries; the retry goes through', async () => {
    broker.faults.failSends = 100;
    const res = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.status).toBe(503);
    const { ledger } = await runtime();
    // Recorded as planned, never as queued: nothing counts against a cap, nothing runs.
    expect((await ledger.list()).map((e) => e.state)).toEqual(['planned', 'planned']);
    broker.faults.failSends = 0;
    const retry = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    expect(retry.status).toBe(202);
    expect((await settled(ledger, 2)).map((e) => e.state)).toEqual(['succeeded', 'succeeded']);
  });

  it('dead-letters a schema-invalid message at once, into the ledger, without ten redeliveries', async () => {
    const client = new ServiceBusClient(broker.connectionString);
    await client.createSender('actions').sendMessages({ messageId: 'garbage-1', body: { kind: 'formatDisk', target: 'everything' } });
    const { ledger } = await runtime();
    const deadline = Date.now() + 10_000;
    while ((await ledger.listDeadLetters()).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const [record] = await ledger.listDeadLetters();
    expect(record).toMatchObject({ messageId: 'garbage-1', by: 'worker', reason: 'SchemaInvalid', deliveryCount: 1 });
    expect(record?.body).toContain('formatDisk');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(broker.stats('actions')).toMatchObject({ ready: 0, locked: 0, deadLettered: 0 });
    await client.close();
  });

  it('reconciles what the broker dead-lettered: a ledger record, the action marked dead-lettered, a comment', async () => {
    const { queue } = await runtime();
    await (queue as ServiceBusActionQueue).stop(); // no worker: this message will exhaust its deliveries elsewhere
    const command = commandFor(
      'disableUser',
      { type: 'user', id: DEMO.adele },
      { source: { type: 'incident', subject: SAMPLE_INCIDENT_ID, incidentArmId: SAMPLE_INCIDENT_ID } },
    );
    // Recorded first, as the engine records every action before it sends its command.
    await (await runtime()).ledger.create(recordedEntry(command));
    const client = new ServiceBusClient(broker.connectionString);
    await client.createSender('actions').sendMessages({ messageId: command.idempotencyKey, body: command, contentType: 'application/json' });
    const receiver = client.createReceiver('actions');
    for (let i = 0; i < 3; i++) {
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 });
      await receiver.abandonMessage(message as ServiceBusReceivedMessage); // a worker that kept crashing
    }
    expect(broker.stats('actions').deadLettered).toBe(1);

    await deadLetterReconciler(
      { isPastDue: false, schedule: { adjustForDST: false } } as Timer,
      new InvocationContext({ functionName: 'deadLetterReconciler' }),
    );
    const { ledger } = await runtime();
    const letters = await ledger.listDeadLetters();
    expect(letters).toEqual([
      expect.objectContaining({
        messageId: command.idempotencyKey,
        by: 'broker',
        reason: 'MaxDeliveryCountExceeded',
        description: 'delivered 3 times',
        actionKey: command.idempotencyKey,
      }),
    ]);
    // The dead-letter queue's own count restarted there: it is left out, not recorded as if it were the failed deliveries.
    expect(letters[0]).not.toHaveProperty('deliveryCount');
    const entry = await ledger.get(command.idempotencyKey);
    expect(entry?.state).toBe('dead-lettered');
    expect(entry?.stateReason).toMatch(/^dead-lettered by Service Bus: MaxDeliveryCountExceeded/);
    expect(broker.stats('actions').deadLettered).toBe(0);
    const comments = [...(engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())?.comments.values() ?? [])];
    expect(comments.map((c) => c.properties.message)).toEqual([expect.stringMatching(/FAILED: needs an analyst[\s\S]*dead-lettered by Service Bus/)]);

    // A second run finds nothing new and changes nothing.
    await deadLetterReconciler(
      { isPastDue: false, schedule: { adjustForDST: false } } as Timer,
      new InvocationContext({ functionName: 'deadLetterReconciler' }),
    );
    expect(await ledger.listDeadLetters()).toHaveLength(1);
    await Promise.all([receiver.close(), client.close()]);

    // The analysts' side, through the API as its routes' roles allow: what was dead-lettered, then the replay, and
    // the action runs to the end on the real broker and table.
    const listed = await call(listDeadLetters, 'deadletters', { method: 'GET', headers: await analyst(['Responder.Read']) });
    expect(listed.status).toBe(200);
    expect(listed.json).toMatchObject({
      deadLetters: [{ by: 'broker', reason: 'MaxDeliveryCountExceeded', actionKey: command.idempotencyKey }],
      failedActions: [{ key: command.idempotencyKey, kind: 'disableUser', state: 'dead-lettered' }],
      total: { deadLetters: 1, failedActions: 1 },
      truncated: false,
    });
    (queue as ServiceBusActionQueue).start((body, delivery) =>
      actionWorker(body, new InvocationContext({ invocationId: `w-${delivery.messageId}`, functionName: 'actionWorker', triggerMetadata: { ...delivery } })),
    );
    const key = command.idempotencyKey;
    const actor = await analyst(['Responder.Act']);
    const replay = (reason: string) => call(replayAction, `actions/${key}/replay`, { params: { key }, headers: actor, body: { reason } });
    expect((await replay('the outage is over')).status).toBe(202);
    const [replayed] = await settled(ledger, 1);
    expect(replayed?.state).toBe('succeeded');
    expect(replayed?.history.map((h) => h.state)).toEqual(['queued', 'dead-lettered', 'planned', 'queued', 'running', 'succeeded']);
    // Recorded as the analyst whose token asked, never as a name the request claims.
    expect(replayed?.history[2]).toMatchObject({ by: ANALYST_A, note: 'replay 1 requested by Analyst A: the outage is over' });
    expect(broker.accepted.map((m) => m.messageId)).toContain(`${key}:r1`);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
    const again = await replay('once more');
    expect([again.status, again.json.error.code]).toEqual([409, 'NotReplayable']);
  });

  it('contains despite oversized names: a 300-character friendly name and a 40 KB domain are cut where they enter, never poison', async () => {
    const incident = sampleIncident();
    const [account, host] = incident.object.properties.relatedEntities as Array<{ properties: Record<string, any> }>;
    account!.properties.friendlyName = 'A'.repeat(300);
    host!.properties.dnsDomain = `contoso.com${'x'.repeat(40 * 1024)}`;
    host!.properties.friendlyName = 'H'.repeat(300);
    const res = await call(incidents, 'incidents', { body: incident, headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.status).toBe(202);
    expect(res.json.decision.notes).toContainEqual(
      expect.stringMatching(/^\d field\(s\) longer than their limits were cut and marked "…": .*dnsDomain \(40971 characters\)/),
    );
    const { ledger } = await runtime();
    const entries = await settled(ledger, 2);
    expect(entries.map((e) => [e.kind, e.state])).toEqual(
      expect.arrayContaining([
        ['revokeSessions', 'succeeded'],
        ['isolateDevice', 'succeeded'],
      ]),
    );
    expect(await ledger.listDeadLetters()).toEqual([]);
  });

  it('holds, with both names, an isolation whose 40 KB host name is not the name Defender knows the device by', async () => {
    const incident = sampleIncident();
    incident.object.properties.relatedEntities[1].properties.hostName = `WKS-042${'x'.repeat(40 * 1024)}`;
    const res = await call(incidents, 'incidents', { body: incident, headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.status).toBe(202);
    const { ledger } = await runtime();
    const isolation = (await ledger.list()).find((e) => e.kind === 'isolateDevice');
    expect(isolation).toMatchObject({
      state: 'pending-approval',
      stateReason: expect.stringMatching(
        /^needs-approval: the payload and Defender disagree on which device this is: the payload's host name is wks-042x+…, Defender's is wks-042\.contoso\.com/,
      ),
    });
    expect((isolation?.target as { hostName: string }).hostName).toHaveLength(253);
    expect(await ledger.listDeadLetters()).toEqual([]);
  });

  it('records an oversized dead-lettered message, cut and marked, and drains it; a malformed command ends its ledger entry', async () => {
    const { queue, ledger } = await runtime();
    await (queue as ServiceBusActionQueue).stop();
    const client = new ServiceBusClient(broker.connectionString);
    const sender = client.createSender('actions');
    // 100 KB of text in a message the worker never got to: the broker dead-letters it after its deliveries.
    await sender.sendMessages({ messageId: 'huge-1', body: { note: 'x'.repeat(100 * 1024) } });
    const receiver = client.createReceiver('actions');
    for (let i = 0; i < 3; i++) {
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 });
      await receiver.abandonMessage(message as ServiceBusReceivedMessage);
    }
    await receiver.close();
    expect(broker.stats('actions').deadLettered).toBe(1);
    await deadLetterReconciler(
      { isPastDue: false, schedule: { adjustForDST: false } } as Timer,
      new InvocationContext({ functionName: 'deadLetterReconciler' }),
    );
    const [record] = await ledger.listDeadLetters();
    expect(record).toMatchObject({ messageId: 'huge-1', by: 'broker', reason: 'MaxDeliveryCountExceeded' });
    expect(record!.body.length).toBeLessThanOrEqual(30_000);
    expect(record!.body.endsWith('…')).toBe(true);
    expect(broker.stats('actions').deadLettered).toBe(0);

    // A queued action whose message arrives malformed (here: a host name no command may carry) ends dead-lettered, with
    // its reason and a comment, instead of waiting `queued` forever.
    const command = commandFor(
      'isolateDevice',
      { type: 'device', id: 'ab'.repeat(20), hostName: 'h'.repeat(300) },
      { source: { type: 'incident', subject: SAMPLE_INCIDENT_ID, incidentArmId: SAMPLE_INCIDENT_ID } },
    );
    const { entry } = await ledger.create({ ...command, key: command.idempotencyKey, state: 'planned', createdAt: command.createdAt, by: 'test' });
    await ledger.transition(entry.key, entry.etag, 'queued', { by: 'test', at: command.createdAt });
    (queue as ServiceBusActionQueue).start((body, delivery) =>
      actionWorker(body, new InvocationContext({ invocationId: `w-${delivery.messageId}`, functionName: 'actionWorker', triggerMetadata: { ...delivery } })),
    );
    await sender.sendMessages({ messageId: command.idempotencyKey, body: command, contentType: 'application/json' });
    const [ended] = await settled(ledger, 1);
    expect(ended).toMatchObject({
      key: command.idempotencyKey,
      state: 'dead-lettered',
      stateReason: expect.stringMatching(/^refused by the worker: not an ActionCommand: target/),
    });
    const comments = [...(engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())?.comments.values() ?? [])];
    expect(comments.map((c) => c.properties.message)).toContainEqual(expect.stringMatching(/FAILED: needs an analyst[\s\S]*refused by the worker/));
    await client.close();
  });
});
