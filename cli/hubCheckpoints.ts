import type { Checkpoint, CheckpointStore, PartitionOwnership } from '@azure/event-hubs';
import { randomUUID } from 'node:crypto';
import type { SharedState } from '../shared/coordination/sharedState';

/** One consumer group's ownerships and checkpoints, per partition id: a hub has at most a few dozen partitions. */
interface HubRecord {
  owners: Record<string, { ownerId: string; lastModifiedTimeInMs: number; etag: string }>;
  checkpoints: Record<string, { sequenceNumber: number; offset: string }>;
}

/**
 * Where the local host keeps its place in each partition of a hub, and which consumer owns which partition: in the
 * engine's shared records (Table storage when AzureWebJobsStorage is set, so a restart resumes after its checkpoint;
 * memory otherwise). The Functions host keeps its own in Azure. A claim succeeds only with the ETag the claimant read,
 * as @azure/event-hubs's load balancing expects of a CheckpointStore.
 */
export class SharedStateCheckpointStore implements CheckpointStore {
  constructor(
    private readonly shared: SharedState,
    private readonly now: () => number = Date.now,
  ) {}

  async listOwnership(namespace: string, eventHubName: string, consumerGroup: string): Promise<PartitionOwnership[]> {
    const record = await this.read(namespace, eventHubName, consumerGroup);
    return Object.entries(record.owners).map(([partitionId, owner]) => ({
      fullyQualifiedNamespace: namespace,
      eventHubName,
      consumerGroup,
      partitionId,
      ...owner,
    }));
  }

  async claimOwnership(claims: PartitionOwnership[]): Promise<PartitionOwnership[]> {
    const [first] = claims;
    if (!first) return [];
    return this.shared.update<HubRecord, PartitionOwnership[]>(keyOf(first.fullyQualifiedNamespace, first.eventHubName, first.consumerGroup), (current) => {
      const record = current ?? empty();
      const granted: PartitionOwnership[] = [];
      for (const claim of claims) {
        // Claimed against what the claimant last read: someone who claimed in between wins.
        if (record.owners[claim.partitionId]?.etag !== claim.etag) continue;
        const owner = { ownerId: claim.ownerId, lastModifiedTimeInMs: this.now(), etag: randomUUID() };
        record.owners[claim.partitionId] = owner;
        granted.push({ ...claim, ...owner });
      }
      return { next: record, result: granted };
    });
  }

  updateCheckpoint(checkpoint: Checkpoint): Promise<void> {
    const { fullyQualifiedNamespace, eventHubName, consumerGroup, partitionId, sequenceNumber, offset } = checkpoint;
    return this.shared.update<HubRecord, void>(keyOf(fullyQualifiedNamespace, eventHubName, consumerGroup), (current) => {
      const record = current ?? empty();
      record.checkpoints[partitionId] = { sequenceNumber, offset: String(offset) };
      return { next: record, result: undefined };
    });
  }

  async listCheckpoints(namespace: string, eventHubName: string, consumerGroup: string): Promise<Checkpoint[]> {
    const record = await this.read(namespace, eventHubName, consumerGroup);
    return Object.entries(record.checkpoints).map(([partitionId, at]) => ({
      fullyQualifiedNamespace: namespace,
      eventHubName,
      consumerGroup,
      partitionId,
      ...at,
    }));
  }

  private read(namespace: string, eventHubName: string, consumerGroup: string): Promise<HubRecord> {
    return this.shared.update<HubRecord, HubRecord>(keyOf(namespace, eventHubName, consumerGroup), (current) => ({
      next: current,
      result: current ?? empty(),
    }));
  }
}

const empty = (): HubRecord => ({ owners: {}, checkpoints: {} });
const keyOf = (namespace: string, hub: string, group: string): string => `eventhub:${namespace}/${hub}/${group}`.toLowerCase();
