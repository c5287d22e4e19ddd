import Module from 'node:module';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const FUNCTIONS_DIR = path.join(__dirname, '../../functions');

/** Load every entry point, as the Functions host does from package.json "main"; answer the registry they filled. */
async function loadFunctions(): Promise<typeof import('../../shared/azure/registry')> {
  for (const file of readdirSync(FUNCTIONS_DIR).filter((f) => f.endsWith('.ts'))) await import(path.join(FUNCTIONS_DIR, file));
  return import('../../shared/azure/registry');
}

interface CoreRegistration {
  name: string;
  bindings: Record<string, { direction: string }>;
  retryOptions?: Record<string, unknown>;
}

/** The built-in module the Functions worker gives @azure/functions, provided the way the worker provides it. */
function actAsFunctionsWorker(): { registered: CoreRegistration[]; hooks: string[]; restore: () => void } {
  const registered: CoreRegistration[] = [];
  const hooks: string[] = [];
  const core = {
    setProgrammingModel: () => undefined,
    registerFunction: (metadata: CoreRegistration) => {
      registered.push(metadata);
      return { dispose: () => undefined };
    },
    registerHook: (name: string) => {
      hooks.push(name);
      return { dispose: () => undefined };
    },
  };
  const original = Module.prototype.require;
  Module.prototype.require = new Proxy(original, {
    apply: (target, self, args: [string]) => (args[0] === '@azure/functions-core' ? core : Reflect.apply(target, self, args)),
  });
  return { registered, hooks, restore: () => void (Module.prototype.require = original) };
}

describe('registration', () => {
  const worker = { registered: [], hooks: [], restore: () => undefined } as ReturnType<typeof actAsFunctionsWorker>;
  afterAll(() => worker.restore());

  it('without a Functions host, records every function in the registry alone, and nothing warns', async () => {
    const warn = vi.spyOn(console, 'warn');
    const { functionsHostPresent, registry } = await loadFunctions();
    expect(functionsHostPresent()).toBe(false);
    expect(registry.http.length + registry.queues.length + registry.timers.length + registry.eventHubs.length).toBeGreaterThan(0);
    expect(warn).not.toHaveBeenCalled();
    warn.mockRestore();
  });

  it('under a Functions host, hands it every function the registry records, with the same trigger', async () => {
    vi.resetModules();
    Object.assign(worker, actAsFunctionsWorker());
    const { functionsHostPresent, registry } = await loadFunctions();
    expect(functionsHostPresent()).toBe(true);

    const triggerOf = (name: string) => Object.values(worker.registered.find((r) => r.name === name)?.bindings ?? {}).find((b) => b.direction === 'in');
    expect(worker.registered.map((r) => r.name).sort()).toEqual(
      [...registry.http, ...registry.queues, ...registry.timers, ...registry.eventHubs].map((r) => r.name).sort(),
    );
    for (const route of registry.http) {
      expect(triggerOf(route.name)).toMatchObject({ type: 'httpTrigger', route: route.route, methods: route.methods, authLevel: 'anonymous' });
    }
    for (const queue of registry.queues) {
      expect(triggerOf(queue.name)).toMatchObject({ type: 'serviceBusTrigger', queueName: queue.queueName, connection: queue.connection });
    }
    for (const timer of registry.timers) expect(triggerOf(timer.name)).toMatchObject({ type: 'timerTrigger', schedule: timer.schedule });
    // Metrics not sent yet go out when the host stops the instance.
    expect(worker.hooks).toEqual(['appTerminate']);
    for (const hub of registry.eventHubs) {
      expect(triggerOf(hub.name)).toMatchObject({ type: 'eventHubTrigger', eventHubName: hub.eventHubName, connection: hub.connection, cardinality: 'many' });
      // The retry policy reaches the host with the function: without it a failed batch would be checkpointed at once.
      expect(worker.registered.find((r) => r.name === hub.name)?.retryOptions).toMatchObject({ strategy: 'exponentialBackoff', maxRetryCount: 8 });
    }
  });
});
