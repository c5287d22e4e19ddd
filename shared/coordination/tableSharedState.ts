import type { TableClient } from '@azure/data-tables';
import { rowKeyFor, SHARED_PARTITION, statusOf } from '../ledger/tableLedger';
import type { SharedState } from './sharedState';

/** Shared records live beside the ledger's entries, in their own partition. */
const PARTITION = SHARED_PARTITION;

/** How often a swap is tried before giving up: only a storm of writers to one record gets this far. */
const MAX_TRIES = 50;

/**
 * SharedState on Azure Table storage: insert when absent (409 if someone else did), replace or delete guarded by the
 * ETag read (412 if someone wrote since). Every conflict re-reads and re-applies the change. Calls for one key from
 * this process are chained, so conflicts only come from other instances.
 */
export class TableSharedState implements SharedState {
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly table: TableClient) {}

  update<T, R>(key: string, change: (current: T | undefined) => { next: T | undefined; result: R }): Promise<R> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.swap(key, change));
    this.chains.set(key, run);
    void run.finally(() => this.chains.get(key) === run && this.chains.delete(key)).catch(() => undefined);
    return run;
  }

  private async swap<T, R>(key: string, change: (current: T | undefined) => { next: T | undefined; result: R }): Promise<R> {
    const rowKey = rowKeyFor(key);
    for (let tries = 0; tries < MAX_TRIES; tries++) {
      let etag: string | undefined;
      let stored: string | undefined;
      try {
        const row = await this.table.getEntity<{ value: string }>(PARTITION, rowKey);
        etag = row.etag;
        stored = row.value;
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
      }
      const { next, result } = change(stored === undefined ? undefined : (JSON.parse(stored) as T));
      const value = next === undefined ? undefined : JSON.stringify(next);
      // A change that leaves the record as read (a refusal, a look) needs no write: it held when the record was read.
      if (value === stored) return result;
      try {
        if (value === undefined) {
          if (etag !== undefined) await this.table.deleteEntity(PARTITION, rowKey, { etag });
        } else if (etag === undefined) {
          await this.table.createEntity({ partitionKey: PARTITION, rowKey, key, value });
        } else {
          await this.table.updateEntity({ partitionKey: PARTITION, rowKey, key, value }, 'Replace', { etag });
        }
        return result;
      } catch (error) {
        const status = statusOf(error);
        if (status !== 409 && status !== 412 && status !== 404) throw error;
      }
    }
    throw new Error(`shared record ${key} kept changing under ${MAX_TRIES} tries`);
  }
}
