/**
 * Small records every instance of the engine must see alike — API budgets, cap budgets, device leases — changed by
 * compare-and-swap: read, compute, write only if nobody wrote in between, else read again. In Azure they live in the
 * ledger's table (Table storage ETags make the swap atomic across instances); locally and in tests, in memory.
 */
export interface SharedState {
  /**
   * Apply `change` to the record at `key` atomically and return its result. `change` must be pure: it may run again
   * on a fresh read when another writer got there first. `next: undefined` deletes the record.
   */
  update<T, R>(key: string, change: (current: T | undefined) => { next: T | undefined; result: R }): Promise<R>;
}

export class MemorySharedState implements SharedState {
  private readonly records = new Map<string, unknown>();

  async update<T, R>(key: string, change: (current: T | undefined) => { next: T | undefined; result: R }): Promise<R> {
    const { next, result } = change(structuredClone(this.records.get(key) as T | undefined));
    if (next === undefined) this.records.delete(key);
    else this.records.set(key, structuredClone(next));
    return result;
  }
}
