import {
  boundedDeadLetter,
  boundedDecision,
  decisionKey,
  COUNTED_STATES,
  firstEntry,
  matchesFilter,
  nextEntry,
  renewedEntry,
  type ActionLedger,
  type DeadLetterRecord,
  type DecisionRecord,
  type LedgerEventInput,
  type LedgerFilter,
  type LedgerLease,
  type LedgerPatch,
  type LedgerEntry,
  type LedgerState,
  type NewLedgerEntry,
} from './ledger';

/**
 * The in-memory twin of the action ledger, for the local host and tests. Same contract as the Table storage
 * adapter, ETags included; entries are copied in and out so callers cannot mutate stored state by accident.
 */
export class MemoryLedger implements ActionLedger {
  private readonly entries = new Map<string, LedgerEntry>();
  private readonly deadLetters = new Map<string, DeadLetterRecord>();
  private readonly decisions = new Map<string, DecisionRecord>();
  private version = 0;

  async create(input: NewLedgerEntry): Promise<{ created: boolean; entry: LedgerEntry }> {
    const existing = this.entries.get(input.key);
    if (existing) return { created: false, entry: structuredClone(existing) };
    const entry: LedgerEntry = { ...firstEntry(input), etag: this.nextEtag() };
    this.entries.set(entry.key, entry);
    return { created: true, entry: structuredClone(entry) };
  }

  async get(key: string): Promise<LedgerEntry | undefined> {
    const entry = this.entries.get(key);
    return entry && structuredClone(entry);
  }

  async transition(key: string, etag: string, to: LedgerState, event: LedgerEventInput, patch: LedgerPatch = {}): Promise<LedgerEntry> {
    const next: LedgerEntry = { ...nextEntry(this.entries.get(key), key, etag, to, event, patch), etag: this.nextEtag() };
    this.entries.set(key, next);
    return structuredClone(next);
  }

  async renewLease(key: string, etag: string, lease: LedgerLease): Promise<string> {
    const next: LedgerEntry = { ...renewedEntry(this.entries.get(key), key, etag, lease), etag: this.nextEtag() };
    this.entries.set(key, next);
    return next.etag;
  }

  async list(filter: LedgerFilter = {}): Promise<LedgerEntry[]> {
    return [...this.entries.values()]
      .filter((e) => matchesFilter(e, filter))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .map((e) => structuredClone(e));
  }

  async countSince(kind: LedgerEntry['kind'], since: string): Promise<number> {
    let count = 0;
    for (const e of this.entries.values()) if (e.kind === kind && e.createdAt >= since && COUNTED_STATES.includes(e.state)) count++;
    return count;
  }

  async recordDeadLetter(record: DeadLetterRecord): Promise<boolean> {
    const bounded = boundedDeadLetter(record);
    if (this.deadLetters.has(bounded.messageId)) return false;
    this.deadLetters.set(bounded.messageId, bounded);
    return true;
  }

  async listDeadLetters(): Promise<DeadLetterRecord[]> {
    return [...this.deadLetters.values()].map((r) => structuredClone(r));
  }

  async recordDecision(record: DecisionRecord): Promise<void> {
    const bounded = boundedDecision(record);
    this.decisions.set(decisionKey(bounded.subject), bounded);
  }

  async decisionOn(subject: string): Promise<DecisionRecord | undefined> {
    const record = this.decisions.get(decisionKey(subject));
    return record && structuredClone(record);
  }

  async listDecisions(since: string): Promise<DecisionRecord[]> {
    return [...this.decisions.values()]
      .filter((r) => r.at >= since)
      .sort((a, b) => a.at.localeCompare(b.at))
      .map((r) => structuredClone(r));
  }

  /** Everything, for the local host's inspection route and tests. */
  all(): LedgerEntry[] {
    return [...this.entries.values()].map((e) => structuredClone(e));
  }

  private nextEtag(): string {
    this.version += 1;
    return `W/"${this.version}"`;
  }
}
