import { DefaultAzureCredential } from '@azure/identity';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { command } from '../fixtures/commands';
import { ServiceBusActionQueue, createServiceBusClient } from '../../shared/queue/serviceBusQueue';
import { ServiceBusEmulator } from '../../sandbox/serviceBus';
import { Sandbox } from '../../sandbox/server';
import { sandboxTls } from '../../sandbox/tls';

/**
 * The managed-identity shape of the connection (`ServiceBusConnection__fullyQualifiedNamespace`): the SDK speaks TLS
 * and authenticates with a token from DefaultAzureCredential — here the sandbox's App Service-style identity endpoint
 * — put on `$cbs` as a JWT. The emulator listens with the test CA's certificate; `customEndpointAddress` reaches it.
 */
let broker: ServiceBusEmulator;
let sandbox: Sandbox;
const saved = { ...process.env };
beforeAll(async () => {
  const tls = sandboxTls();
  [broker, sandbox] = await Promise.all([
    new ServiceBusEmulator().start(0, { key: readFileSync(tls.keyPath), cert: readFileSync(tls.certPath) }),
    Sandbox.start(),
  ]);
  Object.assign(process.env, sandbox.settings());
});
afterAll(async () => {
  process.env = saved;
  await Promise.all([broker.stop(), sandbox.close()]);
});

describe('the Service Bus adapter with a managed identity', () => {
  it('sends over TLS with a token from the managed identity, and receives what it sent', async () => {
    const credential = new DefaultAzureCredential({ authorityHost: sandbox.origin });
    const client = createServiceBusClient(
      { kind: 'identity', fullyQualifiedNamespace: 'contoso-responder.servicebus.windows.net', credential },
      { customEndpointAddress: `sb://127.0.0.1:${broker.port}` },
    );
    const queue = new ServiceBusActionQueue(client);
    const sent = command('disableUser', { type: 'user', id: '6e7b768e-07e2-4810-8459-485f84f8f204' });
    await queue.send([sent]);
    expect(broker.accepted).toEqual([{ queue: 'actions', messageId: sent.idempotencyKey }]);
    const received: unknown[] = [];
    queue.start(async (body) => void received.push(body));
    for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(received).toEqual([sent]);
    expect(sandbox.tenant.calls.some((c) => c.path === '/msi/token')).toBe(true);
    await queue.close();
  });
});
