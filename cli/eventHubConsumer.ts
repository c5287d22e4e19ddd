import { InvocationContext, type RetryOptions } from '@azure/functions';
import { earliestEventPosition, EventHubConsumerClient, type CheckpointStore, type ReceivedEventData } from '@azure/event-hubs';
import { setTimeout as delay } from 'node:timers/promises';
import type { EventHubRegistration } from '../shared/azure/registry';
import { azureCredential } from '../shared/clients/credential';

/** Where a registration's hub is, from the app settings, as the Functions host resolves them. */
export interface HubConnection {
  eventHubName: string;
  connection: { connectionString: string } | { fullyQualifiedNamespace: string };
}

/**
 * The hub a registration names, from `env`: its connection (`<connection>` or `<connection>__fullyQualifiedNamespace`)
 * and its name (`%SETTING%` read from the setting). Undefined when the connection is not set: that trigger is off.
 */
export function hubConnectionOf(registration: EventHubRegistration, env: NodeJS.ProcessEnv): HubConnection | undefined {
  const connectionString = env[registration.connection]?.trim();
  const namespace = env[`${registration.connection}__fullyQualifiedNamespace`]?.trim();
  if (!connectionString && !namespace) return undefined;
  const setting = /^%(\w+)%$/.exec(registration.eventHubName)?.[1];
  const eventHubName = setting === undefined ? registration.eventHubName : env[setting]?.trim();
  if (!eventHubName) throw new Error(`${registration.name}: ${setting} names no event hub (${registration.connection} is set)`);
  return { eventHubName, connection: connectionString ? { connectionString } : { fullyQualifiedNamespace: namespace as string } };
}

/**
 * Deliver a hub's events to its trigger as the Functions host does: in batches, from the start of a partition nobody
 * has read, from after its checkpoint otherwise; a batch that throws is retried by the registration's policy, and
 * checkpointed once it returns or its retries are spent (the host then moves on; Event Hubs keeps no dead letter).
 */
export async function consumeHub(
  registration: EventHubRegistration,
  hub: HubConnection,
  checkpoints: CheckpointStore,
  log: (...args: unknown[]) => void,
  options: { authorityHost: string; maxWaitTimeInSeconds?: number; balanceEveryMs?: number },
): Promise<{ close(): Promise<void> }> {
  const { consumerGroup } = registration;
  // Greedy: one local host claims every partition at once, not one per balancing turn (one turn every 10 s).
  const clientOptions = { loadBalancingOptions: { strategy: 'greedy' as const, updateIntervalInMs: options.balanceEveryMs ?? 10_000 } };
  const client =
    'connectionString' in hub.connection
      ? new EventHubConsumerClient(consumerGroup, hub.connection.connectionString, hub.eventHubName, checkpoints, clientOptions)
      : new EventHubConsumerClient(
          consumerGroup,
          hub.connection.fullyQualifiedNamespace,
          hub.eventHubName,
          await azureCredential(options.authorityHost),
          checkpoints,
          clientOptions,
        );
  let batches = 0;
  const subscription = client.subscribe(
    {
      processEvents: async (events, partition) => {
        const last = events.at(-1);
        if (!last) return;
        const invocationId = `${registration.name}-${partition.partitionId}-${++batches}`;
        await withRetries(
          registration.retry,
          (retryCount) => registration.handler(events.map(bodyOf), contextOf(registration, invocationId, partition.partitionId, events, retryCount, log)),
          (error, retry) => log(`${registration.name}: batch ${invocationId} failed (retry ${retry} of ${registration.retry.maxRetryCount}): ${String(error)}`),
        );
        // Unwritten, a checkpoint costs at most a redelivery the ledger finds done; thrown, it would stop the partition's
        // pump, unread until this host's own ownership of it lapsed (a minute).
        await partition
          .updateCheckpoint(last)
          .catch((error: unknown) =>
            log(`${registration.name}: partition ${partition.partitionId}: checkpoint not written, what follows it may come again: ${String(error)}`),
          );
      },
      processError: async (error, partition) => log(`${registration.name}: partition ${partition.partitionId}: ${String(error)}`),
    },
    { startPosition: earliestEventPosition, maxBatchSize: 100, maxWaitTimeInSeconds: options.maxWaitTimeInSeconds ?? 5 },
  );
  return {
    close: async () => {
      await subscription.close();
      await client.close();
    },
  };
}

/** The body as the Functions host hands it to a Node handler: parsed JSON stays an object, bytes and text as sent. */
function bodyOf(event: ReceivedEventData): unknown {
  return event.body;
}

function contextOf(
  registration: EventHubRegistration,
  invocationId: string,
  partitionId: string,
  events: ReceivedEventData[],
  retryCount: number,
  log: (...args: unknown[]) => void,
): InvocationContext {
  return new InvocationContext({
    invocationId,
    functionName: registration.name,
    // The names the Functions host gives a batch's metadata (cardinality many).
    triggerMetadata: {
      partitionContext: { partitionId, eventHubName: registration.eventHubName, consumerGroup: registration.consumerGroup },
      sequenceNumberArray: events.map((e) => e.sequenceNumber),
      offsetArray: events.map((e) => e.offset),
      enqueuedTimeUtcArray: events.map((e) => e.enqueuedTimeUtc.toISOString()),
    },
    ...(retryCount > 0 && { retryContext: { retryCount, maxRetryCount: registration.retry.maxRetryCount } }),
    logHandler: (_level, ...args) => log(...args),
  });
}

/** Run `attempt` until it succeeds or the policy's retries are spent, waiting between as the policy says. */
async function withRetries(
  policy: RetryOptions,
  attempt: (retryCount: number) => Promise<void>,
  failed: (error: unknown, retry: number) => void,
): Promise<void> {
  for (let retry = 0; ; retry++) {
    try {
      return await attempt(retry);
    } catch (error) {
      failed(error, retry);
      if (policy.maxRetryCount !== -1 && retry >= policy.maxRetryCount) return;
      await delay(retryDelayMs(policy, retry));
    }
  }
}

/** The wait before retry `retry + 1`: fixed, or doubling from the minimum up to the maximum. */
export function retryDelayMs(policy: RetryOptions, retry: number): number {
  if (policy.strategy === 'fixedDelay') return msOf(policy.delayInterval);
  return Math.min(msOf(policy.maximumInterval), msOf(policy.minimumInterval) * 2 ** retry);
}

function msOf(duration: number | { hours?: number; minutes?: number; seconds?: number; milliseconds?: number }): number {
  if (typeof duration === 'number') return duration;
  return ((duration.hours ?? 0) * 60 + (duration.minutes ?? 0)) * 60_000 + (duration.seconds ?? 0) * 1000 + (duration.milliseconds ?? 0);
}
