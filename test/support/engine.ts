import { resetConfig } from '../../shared/config';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { MemoryMetrics } from '../../shared/metrics';
import { InvocationContext } from '@azure/functions';
import { actionWorker } from '../../functions/actionWorker';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import type { ActionQueue } from '../../shared/queue/queue';
import { configureRuntime } from '../../shared/runtime';
import { Sandbox } from '../../sandbox/server';
import type { SandboxAuthority } from '../../sandbox/authority';

const SETTINGS = [
  'AZURE_TENANT_ID',
  'AZURE_AUTHORITY_HOST',
  'RESPONDER_AUDIENCE',
  'RESPONDER_MODE',
  'RESPONDER_POLICY',
  'RESPONDER_POLICY_PATH',
  'RESPONDER_AUTH',
  'RESPONDER_MAX_BODY_BYTES',
  'RESPONDER_IDENTITY_OBJECT_IDS',
  'LOG_LEVEL',
  'ServiceBusConnection',
  'ServiceBusConnection__fullyQualifiedNamespace',
  'AzureWebJobsStorage',
  'RESPONDER_LEDGER_TABLE',
  'RESPONDER_RATE_LIMITS',
  'RESPONDER_ENRICHMENT',
  'RESPONDER_SENTINEL_WORKSPACES',
];

/** The engine as the Functions host would run it, pointed at a test authority, with fresh in-memory adapters. */
export class EngineUnderTest {
  ledger = new MemoryLedger();
  queue: ActionQueue = new EmbeddedQueue();
  /** What the engine recorded as metrics since the last configure. */
  metrics = new MemoryMetrics();

  private constructor(
    /** The tenant the engine serves and acts on: its authority, Graph, Defender and ARM, over HTTPS. */
    readonly sandbox: Sandbox,
  ) {}

  get authority(): SandboxAuthority {
    return this.sandbox.authority;
  }

  static async start(settings: Record<string, string> = {}): Promise<EngineUnderTest> {
    const engine = new EngineUnderTest(await Sandbox.start());
    engine.configure(settings);
    return engine;
  }

  /**
   * Apply app settings (on top of the authority's) and rebuild the runtime with fresh in-memory adapters (or the ones
   * given: a restart with new settings), or, with `fromSettings`, with the adapters the settings name (Service Bus,
   * Table storage), as in Azure.
   */
  configure(settings: Record<string, string> = {}, adapters: { queue?: ActionQueue; ledger?: MemoryLedger; fromSettings?: boolean } = {}): void {
    for (const name of SETTINGS) delete process.env[name];
    for (const name of Object.keys(process.env)) if (name.startsWith('RESPONDER_SWEEP_')) delete process.env[name];
    Object.assign(process.env, { LOG_LEVEL: 'silent' }, this.sandbox.settings(), settings);
    resetConfig();
    this.sandbox.reset();
    this.ledger = adapters.ledger ?? new MemoryLedger();
    this.queue = adapters.queue ?? new EmbeddedQueue();
    this.metrics = new MemoryMetrics();
    configureRuntime(adapters.fromSettings ? { metrics: this.metrics } : { ledger: this.ledger, queue: this.queue, metrics: this.metrics });
  }

  /**
   * Deliver the queue's messages to the registered worker function, as the Functions host does, `concurrency` at once
   * (host.json's maxConcurrentCalls; else the queue's default); returns the queue.
   */
  startWorker(options: { concurrency?: number } = {}): EmbeddedQueue {
    const queue = this.queue as EmbeddedQueue;
    queue.start(
      (body, delivery) =>
        actionWorker(body, new InvocationContext({ invocationId: `w-${delivery.messageId}`, functionName: 'actionWorker', triggerMetadata: { ...delivery } })),
      options,
    );
    return queue;
  }

  /** Run what the embedded queue holds to its end, follow-ups and retries included (scheduled messages released). */
  async drain(rounds = 5): Promise<void> {
    const queue = this.queue as EmbeddedQueue;
    for (let i = 0; i < rounds; i++) {
      await queue.idle();
      queue.releaseScheduled();
    }
    await queue.idle();
  }

  async bearer(roles: string[], claims: Record<string, unknown> = {}): Promise<Record<string, string>> {
    return { authorization: `Bearer ${await this.authority.token(roles, claims)}` };
  }

  stop(): Promise<void> {
    return this.sandbox.close();
  }
}
