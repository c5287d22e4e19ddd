import { onSharedBudget, readingForAPlan, withinExecution } from '../coordination/pacer';
import { logger, type Logger } from '../log';
import { isGuid, isMdeDeviceId } from '../signals/identifiers';
import { ApiError } from './apiError';
import { newestFirst, type DeviceListReads, type Devices, type Machine, type MachineAction, type MachineLookup } from './defender';

/** Ids per list call: 20 Defender ids make a URL of about 1.5 KB once its spaces and quotes are encoded, well under 2 KB. */
export const MAX_BATCH = 20;

/**
 * How long a machine record Defender answered serves a lookup of the same id (the worker's, right after enrichment's):
 * a change Defender makes within it could as well have landed just after a read made now. Machine actions are never
 * remembered: whether an isolation is pending must be Defender's answer at the time it is asked.
 */
export const FRESH_MACHINE_MS = 3_000;

/**
 * How long a read waits for others to go with it while containment is paced (`congested`): an outbreak's isolations
 * are bound by the isolate API's budget, so reads that go together cost far fewer calls and delay nothing that counts.
 */
export const LINGER_MS = 5_000;

/**
 * How long a 400 to a combined filter switches its kind of read to one call per id: a 400 may have had nothing to do
 * with `or` (a page link gone stale, a passing fault), and reading one id a call costs up to MAX_BATCH times the budget.
 */
export const REFUSED_OR_MS = 60 * 60_000;

export interface BatchedDevicesOptions {
  /** Ids per list call (default MAX_BATCH). */
  maxBatch?: number;
  freshMachineMs?: number;
  lingerMs?: number;
  /** Whether containment's writes are being paced now (Pacer.underPressure): reads then linger to go together. */
  congested?: () => boolean;
  now?: () => number;
  log?: Logger;
}

type ReadKind = 'machines by id' | 'machines by Entra device id' | 'machine actions';

/**
 * The device port with concurrent reads coalesced, DataLoader-style: a read made while no call of its kind is in flight
 * goes out on the next turn of the event loop with every read queued by then, so a lone read waits for nothing; reads
 * made while a call is in flight, or waiting its turn for the budget, go together in the next one. An outbreak's
 * lookups and machine-action reads then cost one call per batch of up to MAX_BATCH devices.
 * - A batch serves many executions, so it is paced on the shared budget, never drawn from one execution's reservation.
 *   Executions' reads and enrichment's are batched apart: the first wait their turn for the budget, the others do not.
 * - Reads for a plan (`Pacer.sparing`) go straight through, unbatched: they are refused when the budget is tight, and
 *   containment's reads must not be refused with them.
 * - Writes go straight through, on the reservation of the execution that makes them.
 */
export class BatchedDevices implements Devices {
  private readonly machinesById: Lanes<Machine | undefined>;
  private readonly machinesByAadDeviceId: Lanes<Machine[]>;
  private readonly actionsByMachine: Lanes<MachineAction[]>;
  private readonly fresh = new Map<string, { at: number; machine: Machine }>();
  /** The kinds of read Defender refused `or` for, with when: tried again REFUSED_OR_MS later. */
  private readonly refusesOr = new Map<ReadKind, number>();
  private readonly now: () => number;
  private readonly freshMachineMs: number;

  constructor(
    private readonly inner: Devices & DeviceListReads,
    private readonly options: BatchedDevicesOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.freshMachineMs = options.freshMachineMs ?? FRESH_MACHINE_MS;
    const maxBatch = options.maxBatch ?? MAX_BATCH;
    const lingerMs = options.lingerMs ?? LINGER_MS;
    const linger = (): number => (options.congested?.() ? lingerMs : 0);
    this.machinesById = lanes(
      maxBatch,
      linger,
      () => undefined,
      (ids) => this.readMachinesById(ids),
    );
    this.machinesByAadDeviceId = lanes(
      maxBatch,
      linger,
      () => [],
      (ids) => this.readMachinesByAadDeviceId(ids),
    );
    this.actionsByMachine = lanes(
      maxBatch,
      linger,
      () => [],
      (ids) => this.readMachineActions(ids),
    );
  }

  getMachine(id: string): Promise<Machine | undefined> {
    if (readingForAPlan()) return this.inner.getMachine(id);
    const key = id.toLowerCase();
    const fresh = this.fresh.get(key);
    if (fresh && this.now() - fresh.at < this.freshMachineMs) return Promise.resolve(fresh.machine);
    // An id that is not well formed is read alone: it can neither make a combined filter fail nor lengthen its URL.
    if (!isMdeDeviceId(key)) return shared(() => this.inner.getMachine(id));
    return inLane(this.machinesById).read(key);
  }

  findMachines(by: MachineLookup): Promise<Machine[]> {
    if (readingForAPlan()) return this.inner.findMachines(by);
    if ('aadDeviceId' in by && isGuid(by.aadDeviceId)) return inLane(this.machinesByAadDeviceId).read(by.aadDeviceId.toLowerCase());
    return shared(async () => {
      const asked = this.now();
      return this.remember(await this.inner.findMachines(by), asked);
    });
  }

  listMachineActions(machineId: string): Promise<MachineAction[]> {
    if (readingForAPlan()) return this.inner.listMachineActions(machineId);
    if (!isMdeDeviceId(machineId)) return shared(() => this.inner.listMachineActions(machineId));
    return inLane(this.actionsByMachine).read(machineId.toLowerCase());
  }

  isolate(machineId: string, comment: string, isolationType: 'Full' | 'Selective'): Promise<MachineAction> {
    return this.inner.isolate(machineId, comment, isolationType);
  }

  unisolate(machineId: string, comment: string): Promise<MachineAction> {
    return this.inner.unisolate(machineId, comment);
  }

  private readMachinesById(ids: readonly string[]): Promise<Map<string, Machine | undefined>> {
    return this.together(
      'machines by id',
      ids,
      async (many) => {
        const asked = this.now();
        const machines = this.remember(await this.inner.machinesWhere('id', many), asked);
        return mapValues(
          groupBy(machines, (m) => m.id),
          ([machine]) => machine,
        );
      },
      async (id) => {
        const asked = this.now();
        const machine = await this.inner.getMachine(id);
        return machine && this.remember([machine], asked)[0];
      },
    );
  }

  private readMachinesByAadDeviceId(ids: readonly string[]): Promise<Map<string, Machine[]>> {
    return this.together(
      'machines by Entra device id',
      ids,
      async (many) => {
        const asked = this.now();
        return groupBy(this.remember(await this.inner.machinesWhere('aadDeviceId', many), asked), (m) => m.aadDeviceId);
      },
      async (id) => {
        const asked = this.now();
        return this.remember(await this.inner.findMachines({ aadDeviceId: id }), asked);
      },
    );
  }

  private readMachineActions(ids: readonly string[]): Promise<Map<string, MachineAction[]>> {
    return this.together(
      'machine actions',
      ids,
      async (many) =>
        mapValues(
          groupBy(await this.inner.machineActionsOf(many), (a) => a.machineId),
          newestFirst,
        ),
      (id) => this.inner.listMachineActions(id),
    );
  }

  /**
   * One call for all `ids`, or one call per id for a lone id and when Defender refuses the combined filter. Defender
   * documents id, aadDeviceId and machineId as filterable in its OData V4 API but shows no `or`: a 400 to one switches
   * that kind of read to one call per id for REFUSED_OR_MS, logged, rather than spend a refused call on every batch.
   */
  private async together<V>(
    kind: ReadKind,
    ids: readonly string[],
    many: (ids: readonly string[]) => Promise<Map<string, V>>,
    one: (id: string) => Promise<V>,
  ): Promise<Map<string, V>> {
    const refused = this.refusesOr.get(kind);
    if (refused !== undefined && this.now() - refused >= REFUSED_OR_MS) this.refusesOr.delete(kind);
    if (ids.length > 1 && !this.refusesOr.has(kind)) {
      try {
        return await many(ids);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 400) throw error;
        this.refusesOr.set(kind, this.now());
        (this.options.log ?? logger()).warn(
          { read: kind, status: error.status, code: error.code },
          `Defender refused a filter of ${ids.length} ids joined by 'or' (${error.message}): ${kind} are read one device at a time for ${REFUSED_OR_MS / 60_000} minutes`,
        );
      }
    }
    return new Map(await Promise.all(ids.map(async (id) => [id, await one(id)] as const)));
  }

  /** Machine records as answered, each remembered by id for FRESH_MACHINE_MS from when it was `asked` for. */
  private remember(machines: Machine[], asked: number): Machine[] {
    for (const machine of machines) {
      if (typeof machine.id !== 'string' || !isMdeDeviceId(machine.id)) continue;
      const key = machine.id.toLowerCase();
      this.fresh.delete(key); // re-inserted last, so the oldest entries stay first, where the loop below drops them
      this.fresh.set(key, { at: asked, machine });
    }
    for (const [key, { at }] of this.fresh) {
      if (this.now() - at < this.freshMachineMs) break;
      this.fresh.delete(key);
    }
    return machines;
  }
}

/** The items by the lower-cased value of `key`; items without one are left out (not what any id asked for). */
function groupBy<T>(items: readonly T[], key: (item: T) => string | null | undefined): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const value = key(item);
    if (typeof value !== 'string') continue;
    const group = groups.get(value.toLowerCase());
    if (group) group.push(item);
    else groups.set(value.toLowerCase(), [item]);
  }
  return groups;
}

function mapValues<K, A, B>(map: ReadonlyMap<K, A>, change: (value: A) => B): Map<K, B> {
  return new Map([...map].map(([key, value]) => [key, change(value)]));
}

/**
 * Reads of one kind in two lanes, each batched on its own: executions' (their writes reserved, their reads wait their
 * turn for the budget as their calls would) and everyone else's (enrichment's, which go without data rather than wait).
 */
interface Lanes<V> {
  executions: ReadBatcher<V>;
  others: ReadBatcher<V>;
}

function lanes<V>(maxBatch: number, linger: () => number, absent: () => V, load: (ids: readonly string[]) => Promise<Map<string, V | undefined>>): Lanes<V> {
  return { executions: new ReadBatcher(maxBatch, linger, absent, load, true), others: new ReadBatcher(maxBatch, linger, absent, load, false) };
}

const inLane = <V>({ executions, others }: Lanes<V>): ReadBatcher<V> => (withinExecution() ? executions : others);

/** A read of its own, paced on the shared budget in the caller's lane. */
const shared = <T>(read: () => Promise<T>): Promise<T> => onSharedBudget(read, { forExecutions: withinExecution() });

interface Waiter<V> {
  resolve(value: V): void;
  reject(error: unknown): void;
}

/**
 * Reads of one kind by id, coalesced: ids queued while no batch is in flight go out on the next turn of the event
 * loop, at most `maxBatch` to a call; ids queued meanwhile wait for the batch to end and go in the next. Each answer
 * comes from a call made after the read was asked for, never from one already on its way.
 */
class ReadBatcher<V> {
  private queued = new Map<string, Array<Waiter<V>>>();
  private busy = false;
  /** Set while the next batch lingers for company: a full batch goes at once. */
  private lingering: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxBatch: number,
    /** How long the next batch waits for company (0: the next turn of the event loop). */
    private readonly linger: () => number,
    /** The answer for an id the call did not answer for: not found, no actions. */
    private readonly absent: () => V,
    private readonly load: (ids: readonly string[]) => Promise<Map<string, V | undefined>>,
    private readonly forExecutions: boolean,
  ) {}

  read(id: string): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      const waiters = this.queued.get(id);
      if (waiters) waiters.push({ resolve, reject });
      else this.queued.set(id, [{ resolve, reject }]);
      if (this.lingering && this.queued.size >= this.maxBatch) {
        clearTimeout(this.lingering);
        this.lingering = undefined;
        void this.flush();
      } else this.schedule();
    });
  }

  private schedule(): void {
    if (this.busy) return;
    this.busy = true;
    const wait = this.linger();
    if (wait > 0) this.lingering = setTimeout(() => ((this.lingering = undefined), void this.flush()), wait);
    else setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    const batch = this.queued;
    this.queued = new Map();
    const ids = [...batch.keys()];
    const calls: Array<Promise<void>> = [];
    for (let from = 0; from < ids.length; from += this.maxBatch) calls.push(this.answer(ids.slice(from, from + this.maxBatch), batch));
    await Promise.all(calls);
    this.busy = false;
    if (this.queued.size > 0) this.schedule();
  }

  private async answer(ids: readonly string[], batch: ReadonlyMap<string, Array<Waiter<V>>>): Promise<void> {
    try {
      // Made for every execution in the batch: paced on the shared budget, whoever's read happened to start it.
      const found = await onSharedBudget(() => this.load(ids), { forExecutions: this.forExecutions });
      for (const id of ids) for (const waiter of batch.get(id) ?? []) waiter.resolve(found.get(id) ?? this.absent());
    } catch (error) {
      for (const id of ids) for (const waiter of batch.get(id) ?? []) waiter.reject(error);
    }
  }
}
