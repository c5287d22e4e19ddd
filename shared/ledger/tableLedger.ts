// @azure/data-tables is slow to load: the composition imports this module only when Table storage is configured.
import { createHash } from 'node:crypto';
import { TableClient, type TableEntityResult } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import {
  boundedDeadLetter,
  boundedDecision,
  decisionKey,
  COUNTED_STATES,
  firstEntry,
  LedgerConflictError,
  matchesFilter,
  nextEntry,
  type ActionLedger,
  type DeadLetterRecord,
  type DecisionRecord,
  type LedgerEntry,
  type LedgerEventInput,
  type LedgerFilter,
  type LedgerLease,
  type LedgerPatch,
  type LedgerState,
  type NewLedgerEntry,
} from './ledger';

/** The JSON-valued parts of an entry: Table storage columns are flat, so these travel as JSON text. */
const JSON_COLUMNS = ['target', 'params', 'source', 'history', 'attempts', 'rollback', 'decidedBy', 'lease'] as const;

interface Row {
  partitionKey: string;
  rowKey: string;
  kind: string;
  state: string;
  mode: string;
  reason: string;
  subject: string;
  stateReason?: string;
  replays?: number;
  rolledBackBy?: string;
  createdAt: string;
  updatedAt: string;
  target: string;
  params: string;
  source: string;
  history: string;
  attempts: string;
  rollback?: string;
  decidedBy?: string;
  lease?: string;
}

/**
 * The action ledger on Azure Table storage (already part of every Functions app). One entity per action: PartitionKey
 * is the key's last two hex characters (256 partitions, so no hot partition), RowKey the idempotency key. Insert is
 * the atomic "create if absent" (409 when it exists); every transition is a Replace guarded by the ETag read (412 when
 * someone wrote in between), which is what makes concurrent workers safe. Kind, state, subject and times are columns,
 * for the queries by subject and for the caps.
 */
export class TableLedger implements ActionLedger {
  constructor(readonly table: TableClient) {}

  async create(input: NewLedgerEntry): Promise<{ created: boolean; entry: LedgerEntry }> {
    const entry = firstEntry(input);
    try {
      const response = await this.table.createEntity(toRow(entry));
      return { created: true, entry: { ...entry, etag: response.etag as string } };
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
      return { created: false, entry: (await this.get(input.key)) as LedgerEntry };
    }
  }

  async get(key: string): Promise<LedgerEntry | undefined> {
    try {
      return fromRow(await this.table.getEntity<Row>(partitionOf(key), key));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async transition(key: string, etag: string, to: LedgerState, event: LedgerEventInput, patch: LedgerPatch = {}): Promise<LedgerEntry> {
    const next = nextEntry(await this.get(key), key, etag, to, event, patch);
    try {
      const response = await this.table.updateEntity(toRow(next), 'Replace', { etag });
      return { ...next, etag: response.etag as string };
    } catch (error) {
      if (statusOf(error) === 412) throw new LedgerConflictError(key);
      throw error;
    }
  }

  /** A Merge of the lease column alone, guarded by the ETag: a renewal does not rewrite the entry's history. */
  async renewLease(key: string, etag: string, lease: LedgerLease): Promise<string> {
    try {
      const response = await this.table.updateEntity({ partitionKey: partitionOf(key), rowKey: key, lease: JSON.stringify(lease) }, 'Merge', { etag });
      return response.etag as string;
    } catch (error) {
      // 412: written since it was read; 404: gone. Either way it is no longer the entry the caller holds.
      if (statusOf(error) === 412 || statusOf(error) === 404) throw new LedgerConflictError(key);
      throw error;
    }
  }

  async list(filter: LedgerFilter = {}): Promise<LedgerEntry[]> {
    // The server narrows by subject, state, kind and time (columns); the target, one of several identifiers, is matched here.
    const clauses = OTHER_PARTITIONS.map((partition) => `PartitionKey ne '${partition}'`);
    if (filter.subject !== undefined) clauses.push(`subject eq ${quote(filter.subject)}`);
    if (filter.state !== undefined) clauses.push(`state eq ${quote(filter.state)}`);
    if (filter.kind !== undefined) clauses.push(`kind eq ${quote(filter.kind)}`);
    if (filter.since !== undefined) clauses.push(`createdAt ge ${quote(filter.since)}`);
    const entries: LedgerEntry[] = [];
    for await (const row of this.table.listEntities<Row>({ queryOptions: { filter: clauses.join(' and ') } })) {
      const entry = fromRow(row);
      if (matchesFilter(entry, filter)) entries.push(entry);
    }
    return entries.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async countSince(kind: LedgerEntry['kind'], since: string): Promise<number> {
    const states = COUNTED_STATES.map((s) => `state eq ${quote(s)}`).join(' or ');
    const filter = `kind eq ${quote(kind)} and createdAt ge ${quote(since)} and (${states})`;
    let count = 0;
    for await (const _row of this.table.listEntities({ queryOptions: { filter, select: ['RowKey'] } })) count++;
    return count;
  }

  async recordDeadLetter(input: DeadLetterRecord): Promise<boolean> {
    const record = boundedDeadLetter(input);
    const rowKey = rowKeyFor(record.messageId);
    try {
      await this.table.createEntity({ partitionKey: DEAD_LETTER_PARTITION, rowKey, ...record });
      return true;
    } catch (error) {
      if (statusOf(error) === 409) return false;
      throw error;
    }
  }

  async listDeadLetters(): Promise<DeadLetterRecord[]> {
    const records: DeadLetterRecord[] = [];
    const rows = this.table.listEntities<DeadLetterRecord>({ queryOptions: { filter: `PartitionKey eq '${DEAD_LETTER_PARTITION}'` } });
    for await (const { partitionKey: _p, rowKey: _r, etag: _e, timestamp: _t, ...record } of rows) records.push(record as DeadLetterRecord);
    return records.sort((a, b) => a.at.localeCompare(b.at));
  }

  async recordDecision(input: DecisionRecord): Promise<void> {
    const record = boundedDecision(input);
    await this.table.upsertEntity({ partitionKey: DECISION_PARTITION, rowKey: rowKeyFor(decisionKey(record.subject)), ...record }, 'Replace');
  }

  async decisionOn(subject: string): Promise<DecisionRecord | undefined> {
    try {
      return decisionOf(await this.table.getEntity<DecisionRecord>(DECISION_PARTITION, rowKeyFor(decisionKey(subject))));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async listDecisions(since: string): Promise<DecisionRecord[]> {
    const records: DecisionRecord[] = [];
    const filter = `PartitionKey eq '${DECISION_PARTITION}' and at ge ${quote(since)}`;
    for await (const row of this.table.listEntities<DecisionRecord>({ queryOptions: { filter } })) records.push(decisionOf(row));
    return records.sort((a, b) => a.at.localeCompare(b.at));
  }
}

/** A decision record's own fields, by name (a row also carries the table's keys, ETag and OData metadata). */
function decisionOf(row: DecisionRecord): DecisionRecord {
  const { subject, at, by, summary, actions, policy } = row;
  return { subject, at, by, summary, actions, policy };
}

/**
 * Dead-letter records, decision records and the shared records (tableSharedState.ts) share the table, each in its own partition; action
 * entries live in the 256 two-hex-digit partitions, so the names cannot meet.
 */
const DEAD_LETTER_PARTITION = 'deadletter';
const DECISION_PARTITION = 'decision';
export const SHARED_PARTITION = 'shared';
const OTHER_PARTITIONS = [DEAD_LETTER_PARTITION, DECISION_PARTITION, SHARED_PARTITION];

/** Where the ledger's table is: a connection string (Azurite's in tests), or a table endpoint and the managed identity. */
export type TableLocation = { connectionString: string } | { tableServiceUri: string; credential: TokenCredential };

/** Open the ledger table, creating it if needed. */
export async function openTableLedger(location: TableLocation, tableName = 'actionledger'): Promise<TableLedger> {
  const table =
    'connectionString' in location
      ? TableClient.fromConnectionString(location.connectionString, tableName, {
          allowInsecureConnection: /UseDevelopmentStorage|127\.0\.0\.1|localhost/.test(location.connectionString),
        })
      : new TableClient(location.tableServiceUri, tableName, location.credential);
  try {
    await table.createTable();
  } catch (error) {
    if (statusOf(error) !== 409) throw error;
  }
  return new TableLedger(table);
}

/**
 * The last two hex characters of the key, which ends with the target's id or its hash: 256 partitions spread by target,
 * so the actions of one large incident do not crowd one partition (the key starts with the incident's digest).
 */
const partitionOf = (key: string): string => key.slice(-2);

/** OData string literal: single quotes doubled. */
const quote = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** A RowKey for any text (a MessageId, a shared record's name), which may hold characters a RowKey may not (/ \ # ?). */
export function rowKeyFor(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** The HTTP status of a Table storage error. */
export function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

function toRow(entry: Omit<LedgerEntry, 'etag'>): Row {
  const row: Row = {
    partitionKey: partitionOf(entry.key),
    rowKey: entry.key,
    kind: entry.kind,
    state: entry.state,
    mode: entry.mode,
    reason: entry.reason,
    subject: entry.source.subject,
    createdAt: entry.createdAt,
    updatedAt: entry.updatedAt,
    target: '',
    params: '',
    source: '',
    history: '',
    attempts: '',
  };
  if (entry.stateReason !== undefined) row.stateReason = entry.stateReason;
  if (entry.replays !== undefined) row.replays = entry.replays;
  if (entry.rolledBackBy !== undefined) row.rolledBackBy = entry.rolledBackBy;
  for (const column of JSON_COLUMNS) if (entry[column] !== undefined) row[column] = JSON.stringify(entry[column]);
  return row;
}

function fromRow(row: TableEntityResult<Row>): LedgerEntry {
  const entry: LedgerEntry = {
    key: row.rowKey as string,
    kind: row.kind as LedgerEntry['kind'],
    target: JSON.parse(row.target),
    params: JSON.parse(row.params),
    mode: row.mode as LedgerEntry['mode'],
    reason: row.reason,
    source: JSON.parse(row.source),
    state: row.state as LedgerState,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    history: JSON.parse(row.history),
    attempts: JSON.parse(row.attempts),
    etag: row.etag,
  };
  if (row.stateReason !== undefined) entry.stateReason = row.stateReason;
  if (row.replays !== undefined) entry.replays = row.replays;
  if (row.rolledBackBy !== undefined) entry.rolledBackBy = row.rolledBackBy;
  if (row.rollback !== undefined) entry.rollback = JSON.parse(row.rollback);
  if (row.decidedBy !== undefined) entry.decidedBy = JSON.parse(row.decidedBy);
  if (row.lease !== undefined) entry.lease = JSON.parse(row.lease);
  return entry;
}
