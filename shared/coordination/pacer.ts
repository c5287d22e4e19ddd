import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { release, restamp, spend, turnAt, usage, type Budget, type BudgetAnswer, type BudgetRecord } from './budget';
import type { SharedState } from './sharedState';

/** The Defender for Endpoint APIs the engine calls: Defender counts each API's calls apart (reference/defender.md). */
export const DEFENDER_APIS = ['defender-machines', 'defender-machine', 'defender-machine-actions', 'defender-isolate', 'defender-unisolate'] as const;
export type DefenderApi = (typeof DEFENDER_APIS)[number];

/** The API budgets the engine paces itself to (reference/defender.md, graph.md, idprotection.md). */
export const PACED_APIS = [...DEFENDER_APIS, 'graph-writes', 'idprotection'] as const;
export type PacedApi = (typeof PACED_APIS)[number];

/** "Rate limitations for this API are 100 calls per minute and 1500 calls per hour", on each Defender API's page. */
const DEFENDER_API_BUDGET: Budget[] = [
  { max: 100, windowMs: 60_000 },
  { max: 1500, windowMs: 3_600_000 },
];

export const DEFAULT_API_BUDGETS: Record<PacedApi, Budget[]> = {
  // GET /api/machines?$filter=…: defender-endpoint/api/get-machines.md.
  'defender-machines': DEFENDER_API_BUDGET,
  // GET /api/machines/{id}: defender-endpoint/api/get-machine-by-id.md.
  'defender-machine': DEFENDER_API_BUDGET,
  // GET /api/machineactions?$filter=…: defender-endpoint/api/get-machineactions-collection.md.
  'defender-machine-actions': DEFENDER_API_BUDGET,
  // POST /api/machines/{id}/isolate: defender-endpoint/api/isolate-machine.md.
  'defender-isolate': DEFENDER_API_BUDGET,
  // POST /api/machines/{id}/unisolate: defender-endpoint/api/unisolate-machine.md.
  'defender-unisolate': DEFENDER_API_BUDGET,
  // Identity and access writes: 3,000 per 2.5 minutes per app and tenant (Graph concepts/throttling.md), so every
  // instance of one engine shares it; the 18,000 per 5 minutes per tenant is beyond what one app can reach.
  'graph-writes': [{ max: 3000, windowMs: 150_000 }],
  // ID Protection: 1 request per second per tenant, shared with every other app, and its 429 carries no Retry-After.
  idprotection: [{ max: 1, windowMs: 1000 }],
};

/** The same budgets for every Defender API, each still counted apart: what `defender=…` in RESPONDER_RATE_LIMITS sets. */
export function everyDefenderApi(budgets: Budget[]): Record<DefenderApi, Budget[]> {
  return Object.fromEntries(DEFENDER_APIS.map((api) => [api, budgets])) as Record<DefenderApi, Budget[]>;
}

/**
 * A call the engine itself held back because an API's budget is spent: not an answer from the API. The worker defers
 * the action for `retryAfterMs` without spending an attempt; the enricher waits or goes without the data.
 */
export class EnginePaced extends Error {
  override readonly name = 'EnginePaced';
  constructor(
    readonly api: PacedApi,
    message: string,
    /** When the budget frees up enough for this call. */
    readonly retryAfterMs: number,
    /** The turn the pacer gave the caller: it comes back then and spends on it (Pacer.reserve). */
    readonly turn?: Turn,
  ) {
    super(message);
  }
}

/** An action's turn at an API's budget, given when the budget refused it: come back `at` (epoch ms) to spend `units`. */
export interface Turn {
  api: PacedApi;
  at: number;
  units: number;
}

/** A call granted at a window's edge reaches the API a little later: windows are widened by 2% so it cannot land inside. */
const EDGE_MARGIN = 0.02;

export interface PacerOptions {
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Waits up to this long happen inside the call; longer ones become a deferral the queue carries (default 2 s). */
  maxInlineWaitMs?: number;
  /** How long a call an execution is committed to (beyond its reservation, or a batch it waits on) may wait inline. */
  committedWaitMs?: number;
  /** Told of each call that waited within itself for its budget, and how long (metrics). */
  onWait?: (api: PacedApi, ms: number) => void;
}

/** The pacer's waits, by name (RESPONDER_TIME_SCALE compresses them). */
export const PACER_TIMINGS = { maxInlineWaitMs: 2000, committedWaitMs: 60_000 };

/**
 * Paces API calls to their budgets across every instance (the budgets live in SharedState), so a burst queues instead
 * of hammering an API into 429s. `take` resolves when the call may go, after a short wait if need be; when the wait
 * would be long it throws `EnginePaced` with the wait: the worker then reschedules the
 * action for that moment without spending one of its attempts.
 */
export class Pacer {
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxInlineWaitMs: number;
  private readonly committedWaitMs: number;
  private readonly onWait: ((api: PacedApi, ms: number) => void) | undefined;
  /** Each API's budget as this instance last saw it: when, and the share of its fullest window used (1: refused). */
  private readonly seen = new Map<PacedApi, { at: number; used: number }>();
  /**
   * The turns this instance gave out whose actions have not spent on them yet, per API, in order: each refused action
   * is told when a unit will be free for it if those told before it come on time, so a refused burst comes back once
   * each, spread as the budget frees, instead of every action trying again at every refill. Other instances keep lines
   * of their own: the shared budget still decides every call, so a turn that guessed wrong costs one more deferral,
   * never a call.
   */
  private readonly lines = new Map<PacedApi, Turn[]>();
  /** Turns are given one at a time per API, each behind those given before it. */
  private readonly lining = new Map<PacedApi, Promise<unknown>>();

  constructor(
    private readonly state: SharedState,
    private readonly budgets: Record<PacedApi, Budget[]> = DEFAULT_API_BUDGETS,
    options: PacerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => delay(ms));
    this.maxInlineWaitMs = options.maxInlineWaitMs ?? PACER_TIMINGS.maxInlineWaitMs;
    this.committedWaitMs = Math.max(this.maxInlineWaitMs, options.committedWaitMs ?? PACER_TIMINGS.committedWaitMs);
    this.onWait = options.onWait;
  }

  /**
   * One call to `api`: drawn from the current execution's reservation if it has a unit left, else from the shared
   * budget. A call beyond its execution's reservation waits its turn (up to a minute) rather than strand the action
   * half-done; the reservation counts it, so an executor that undercounts its calls is caught (`Reservation.overdrawn`).
   * So does a call made for executions at once (`onSharedBudget` with `forExecutions`), drawn from none of them.
   */
  async take(api: PacedApi): Promise<void> {
    if (sparing.getStore()) return this.takeSpare(api);
    const { committedWaitMs } = this;
    const reservation = reservations.getStore();
    if (!reservation) {
      await this.acquire(api, 1, forExecutions.getStore() ? committedWaitMs : this.maxInlineWaitMs);
      return;
    }
    const unit = reservation.draw(api);
    if (!unit) {
      await this.acquire(api, 1, committedWaitMs);
      return;
    }
    if (unit.onTurn) {
      await this.spendOnTurn(unit, unit.onTurn);
      // Its uses are in the record now: counted in the line too, they would make later turns later than they are.
      if (unit.left === 0) {
        this.leaveLine(unit.onTurn);
        unit.onTurn = undefined;
      }
      return;
    }
    // Made within the windows' edge margin of its reservation, the call's stamp is already right: no shared write.
    if (this.now() - unit.at <= Math.min(...this.budgets[api].map((b) => b.windowMs)) * EDGE_MARGIN) return;
    // Else the call goes out now, not when it was reserved: its stamp moves, and it waits if the window is full now.
    await this.until(api, committedWaitMs, (record, budgets, now) => restamp(record, budgets, unit.at, now));
  }

  /**
   * Reserve the writes an execution will make, before it makes any call (all or nothing): a burst of actions then
   * queues whole, instead of each one spending budget on its reads and being deferred before its write, forever.
   * Throws `EnginePaced` when a budget is spent, with a turn to come back at: a caller back with its `turn` leaves the
   * line, or if back ahead of it spends nothing yet (its calls spend when they go) and leaves it when settled. Given a
   * reservation, adds to it: an executor that learns what it must write (how many roles) reserves those calls before
   * the first write.
   */
  async reserve(costs: ApiCosts, into: Reservation = new Reservation(), turn?: Turn): Promise<Reservation> {
    const granted: HeldUnits[] = [];
    try {
      for (const [api, units] of Object.entries(costs) as Array<[PacedApi, number]>) {
        if (units <= 0 || this.budgets[api].length === 0) continue;
        // A budget smaller than one execution's cost: reserve what fits, the rest waits its turn inside.
        const fits = Math.min(units, ...this.budgets[api].map((b) => b.max));
        const mine = turn?.api === api ? turn : undefined;
        granted.push(mine && mine.at > this.now() ? await this.ahead(mine, fits) : { api, left: fits, at: await this.inTurn(api, fits, mine) });
      }
    } catch (error) {
      // One API's budget is spent: the action is deferred whole, so the units it reserved from the others go back.
      for (const unit of granted) if (unit.onTurn) this.leaveLine(unit.onTurn);
      await this.giveBack(granted);
      throw error;
    }
    into.add(costs, granted);
    return into;
  }

  /**
   * An action back ahead of its turn, as deferrals bring them (so its reads are done when its unit frees): nothing is
   * spent now; its calls spend when they go, waiting inside the execution for the turn's unit (`spendOnTurn`). A turn
   * rests on when the turns before it were expected to spend: if the record says its unit frees later than that by more
   * than a short wait, it is deferred again to then, keeping its place, rather than hold a worker while it waits.
   */
  private async ahead(turn: Turn, units: number): Promise<HeldUnits> {
    // Only a turn this instance gave is re-timed: the line that counts the turns ahead of it is here. One given elsewhere
    // (or before a restart) holds, its call waiting for the unit: re-timed on a line that knows none of the turns ahead
    // of it, actions would be sent back and forth between instances.
    const frees = this.lineOf(turn.api).some(sameTurn(turn)) ? await this.unitFreesAt(turn, units) : undefined;
    if (frees !== undefined && frees - turn.at > this.maxInlineWaitMs) {
      const later: Turn = { ...turn, at: frees };
      const line = this.lineOf(turn.api);
      const mine = line.findIndex(sameTurn(turn));
      // Gone from the line while the record was read (an old copy of the action re-timed it): a copy added here would
      // count its action twice, and make every turn given after it a unit late.
      if (mine >= 0) line[mine] = later;
      throw new EnginePaced(
        turn.api,
        `paced by the engine: the ${turn.api} unit for this turn frees later than it said`,
        Math.max(1, frees - this.now()),
        later,
      );
    }
    // It stays in the line until its call spends (or its execution ends): until then its unit is in no record.
    return { api: turn.api, left: units, at: turn.at, onTurn: turn };
  }

  /** When the record says `turn`'s unit frees, counting the turns ahead of it in this instance's line; undefined if unread. */
  private async unitFreesAt(turn: Turn, units: number): Promise<number | undefined> {
    const budgets = this.widened(turn.api);
    return this.state
      .update<BudgetRecord, number>(`pace:${turn.api}`, (record) => {
        // The line is read with the record, not before: a turn spent while this read waited its turn for the record
        // would count twice, as a use and as a turn, and the action behind it be sent away a window too late.
        const line = this.lineOf(turn.api);
        const mine = line.findIndex(sameTurn(turn));
        const ahead = line.filter((t, i) => i !== mine && (t.at < turn.at || (t.at === turn.at && i < mine)));
        return { next: record, result: turnAt(record, budgets, this.now(), ahead, units) };
      })
      .catch(() => undefined);
  }

  /** A call on a turn: spent when it goes, after a wait for the unit if need be; refused past that, with a new turn. */
  private async spendOnTurn(unit: HeldUnits, turn: Turn): Promise<void> {
    try {
      await this.acquire(turn.api, 1, this.committedWaitMs);
    } catch (error) {
      if (!(error instanceof EnginePaced)) throw error;
      // Missed, the turn leaves the line before the new one is given (counted, it would make that one later), and its
      // units end with it: never spent, nothing goes back, and settle takes no other action's copy of it out.
      this.leaveLine(turn);
      unit.left = 0;
      unit.onTurn = undefined;
      throw refusedWith(error, await this.lineUp(turn.api, 1), this.now());
    }
  }

  private leaveLine(turn: Turn): void {
    const line = this.lineOf(turn.api);
    const mine = line.findIndex(sameTurn(turn));
    if (mine >= 0) line.splice(mine, 1);
  }

  /**
   * Spend `units` of `api` now, or be refused with a turn (EnginePaced). A unit free now goes to whoever asks, turn or
   * not: a turn's action may be held up behind a backlog, and a unit kept for it would be lost to everyone.
   */
  private async inTurn(api: PacedApi, units: number, turn: Turn | undefined): Promise<number> {
    let at: number;
    try {
      at = await this.acquire(api, units, this.maxInlineWaitMs);
    } catch (error) {
      if (turn) this.leaveLine(turn);
      if (!(error instanceof EnginePaced)) throw error;
      throw refusedWith(error, await this.lineUp(api, units), this.now());
    }
    // Left once spent, not before: until its use is in the record, the turn stands for it (turnFor counts the line).
    if (turn) this.leaveLine(turn);
    return at;
  }

  /**
   * The turn of an action about to be queued, for the first paced API it writes to. While that budget, as this
   * instance last saw it, has room for this action and every one it has queued and not yet seen spend, the turn is
   * now: no shared read, and the action goes at once. Past that, its turn is read from the budget's record, and the
   * action queued for then reaches the worker as its unit frees, instead of being delivered to be deferred. Undefined
   * for an action that writes to no paced API, or if the record cannot be read.
   */
  async turnFor(costs: ApiCosts): Promise<Turn | undefined> {
    for (const [api, units] of Object.entries(costs) as Array<[PacedApi, number]>) {
      if (units <= 0 || this.budgets[api].length === 0) continue;
      const fits = Math.min(units, ...this.budgets[api].map((b) => b.max));
      const line = this.lineOf(api);
      if (
        this.pressed(
          api,
          line.reduce((sum, turn) => sum + turn.units, fits),
        )
      )
        return this.lineUp(api, fits);
      const now: Turn = { api, at: this.now(), units: fits };
      line.push(now);
      return now;
    }
    return undefined;
  }

  /** How long until `turn`, on this pacer's clock. */
  msUntil(turn: Turn): number {
    return turn.at - this.now();
  }

  /** Whether `api`'s tightest budget would be near full (PRESSURE_SHARE) with `more` uses than this instance last saw. */
  private pressed(api: PacedApi, more: number): boolean {
    const tightest = this.budgets[api].reduce((a, b) => (b.windowMs < a.windowMs ? b : a));
    return this.lastSeenUse(api) * tightest.max + more > PRESSURE_SHARE * tightest.max;
  }

  /** The share of `api`'s fullest window this instance last saw used (1: refused), if within its shortest window; else 0. */
  private lastSeenUse(api: PacedApi): number {
    const seen = this.seen.get(api);
    const windowMs = Math.min(...this.budgets[api].map((b) => b.windowMs));
    return seen !== undefined && this.now() - seen.at < windowMs ? seen.used : 0;
  }

  /**
   * A turn at the end of this instance's line for `api`: when its budget will have room, if every turn ahead is taken.
   * Undefined if the budget's record cannot be read now: a turn is advice, and the caller does as it did without one.
   */
  private lineUp(api: PacedApi, units: number): Promise<Turn | undefined> {
    const budgets = this.widened(api);
    const given = (this.lining.get(api) ?? Promise.resolve())
      .then(async () => {
        const line = this.lineOf(api);
        const at = await this.state.update<BudgetRecord, number>(`pace:${api}`, (record) => ({
          next: record,
          result: turnAt(record, budgets, this.now(), line, units),
        }));
        const turn: Turn = { api, at, units };
        line.push(turn);
        return turn;
      })
      .catch(() => undefined);
    this.lining.set(api, given);
    return given;
  }

  /** This instance's line for `api`, without the turns a window old: their actions came back elsewhere, or were lost. */
  private lineOf(api: PacedApi): Turn[] {
    let line = this.lines.get(api);
    if (!line) this.lines.set(api, (line = []));
    const staleBefore = this.now() - Math.min(...this.budgets[api].map((b) => b.windowMs));
    for (let i = line.length - 1; i >= 0; i--) if ((line[i] as Turn).at < staleBefore) line.splice(i, 1);
    return line;
  }

  /** Give back the units a finished execution reserved and did not use, so the budgets count only calls made. */
  settle(reservation: Reservation): Promise<void> {
    // A turn it came back on is over: its call, if made, is in the record now.
    for (const turn of reservation.turns()) this.leaveLine(turn);
    return this.giveBack(reservation.unused());
  }

  /** If giving units back fails, they stay spent: the budget then counts too many calls, never too few. */
  private async giveBack(units: readonly HeldUnits[]): Promise<void> {
    for (const { api, left, at, onTurn } of units) {
      // A turn's units were never spent: released, they would free uses others made.
      if (left <= 0 || onTurn) continue;
      await this.state.update<BudgetRecord, void>(`pace:${api}`, (record) => ({ next: release(record, at, left), result: undefined })).catch(() => undefined);
    }
  }

  /**
   * Run reads that containment must not pay for (a what-if plan): inside, each call is made only if it fits a small
   * budget of its own (a tenth of the API's) and leaves at least half of the API's shared budget free for containment;
   * otherwise it is refused at once with `EnginePaced`, and the caller goes without the data.
   */
  sparing<T>(run: () => Promise<T>): Promise<T> {
    return sparing.run(true, run);
  }

  private async takeSpare(api: PacedApi): Promise<void> {
    const budgets = this.budgets[api];
    if (budgets.length === 0) return;
    // A tenth of each budget; one too small to split (ID Protection's one call a second) lends one call per ten windows.
    const own = budgets.map((b) =>
      b.max * SPARE_SHARE >= 1
        ? { max: Math.floor(b.max * SPARE_SHARE), windowMs: b.windowMs }
        : { max: 1, windowMs: Math.ceil(b.windowMs / (b.max * SPARE_SHARE)) },
    );
    const refuse = (wait: number) => new EnginePaced(api, `not read: the ${api} budget is kept for containment`, wait);
    const mine = await this.state.update<BudgetRecord, BudgetAnswer>(`pace-spare:${api}`, (record) => spend(record, own, this.now()));
    if (!mine.granted) throw refuse(mine.retryAt - this.now());
    // The shared windows are widened as `until` widens them, so the two count the same calls.
    const shared = this.widened(api);
    const answer = await this.state.update<BudgetRecord, BudgetAnswer>(`pace:${api}`, (record) => spend(record, shared, this.now(), 1, KEEP_FOR_CONTAINMENT));
    if (!answer.granted) throw refuse(answer.retryAt - this.now());
  }

  /**
   * Whether `api` is close to being paced, as this instance last saw its budget within a window: a call refused, or
   * more than `share` of a window used. Reads then wait a little to go together (BatchedDevices), since containment is
   * bound by that API's budget, not by how soon a read returns.
   */
  underPressure(api: PacedApi, share = PRESSURE_SHARE): boolean {
    return this.lastSeenUse(api) >= share;
  }

  /** Run an execution with its reservation: the clients' `take` draws on it. */
  within<T>(reservation: Reservation, run: () => Promise<T>): Promise<T> {
    return reservations.run(reservation, run);
  }

  /** The API's windows, widened by the edge margin: what the shared records count in. */
  private widened(api: PacedApi): Budget[] {
    return this.budgets[api].map((b) => ({ max: b.max, windowMs: Math.ceil(b.windowMs * (1 + EDGE_MARGIN)) }));
  }

  /** Spend `units` now, waiting up to `maxWaitMs`; returns the time stamped. */
  private acquire(api: PacedApi, units: number, maxWaitMs: number): Promise<number> {
    return this.until(api, maxWaitMs, (record, budgets, now) => spend(record, budgets, now, units));
  }

  private async until(
    api: PacedApi,
    maxWaitMs: number,
    change: (record: BudgetRecord | undefined, budgets: Budget[], now: number) => { next: BudgetRecord; result: BudgetAnswer },
  ): Promise<number> {
    const budgets = this.widened(api);
    // Bounded in all, not per try: another instance may take each unit this call wakes for.
    const started = this.now();
    const deadline = started + maxWaitMs;
    let slept = false;
    for (;;) {
      if (budgets.length === 0) return this.now();
      // The clock is read inside the swap, not before it: calls wait their turn for the shared record (this process
      // chains its writes to it), and a stamp taken before that wait would be older than the call, so the windows
      // would admit more calls than the API counts in them.
      const { answer, at, used } = await this.state.update<BudgetRecord, { answer: BudgetAnswer; at: number; used: number }>(`pace:${api}`, (record) => {
        const now = this.now();
        const { next, result } = change(record, budgets, now);
        return { next, result: { answer: result, at: now, used: result.granted ? usage(next, budgets, now) : 1 } };
      });
      this.seen.set(api, { at, used });
      if (answer.granted) {
        // Only a call that slept waited for its budget; the record's round trip is not a wait.
        if (slept) this.onWait?.(api, at - started);
        return at;
      }
      const wait = Math.max(1, answer.retryAt - this.now());
      if (this.now() + wait > deadline) {
        const said = this.budgets[api].map((b) => `${b.max} per ${b.windowMs / 1000} s`).join(' and ');
        throw new EnginePaced(api, `paced by the engine: the ${api} budget (${said}) is spent`, wait);
      }
      slept = true;
      await this.sleep(wait);
    }
  }
}

/** Turns of one API at one time for as many units are interchangeable: either may be taken for the other. */
const sameTurn =
  (turn: Turn) =>
  (other: Turn): boolean =>
    other.at === turn.at && other.units === turn.units;

/** A refusal, with the turn the refused caller was given. */
function refusedWith(refusal: EnginePaced, turn: Turn | undefined, now: number): EnginePaced {
  return turn ? new EnginePaced(refusal.api, refusal.message, Math.max(1, turn.at - now), turn) : refusal;
}

/** Paced calls per API. */
export type ApiCosts = Partial<Record<PacedApi, number>>;

/** Units of an API's shared budget held for an execution: how many are left, and when they were stamped. */
interface HeldUnits {
  api: PacedApi;
  left: number;
  at: number;
  /** Not spent yet: a turn's units, each spent when its call goes (`at` is the turn's); the turn leaves the line with the last. */
  onTurn?: Turn;
}

/**
 * One execution's API calls: those it declared it would make, the units of the shared budgets held for them, and those
 * it made. `overdrawn` names every API it called beyond what it had declared at the time: an apiCost that undercounts.
 */
export class Reservation {
  private readonly declared = new Map<PacedApi, number>();
  private readonly made = new Map<PacedApi, number>();
  private readonly overdraws = new Map<PacedApi, { api: PacedApi; declared: number; made: number }>();
  private readonly held: HeldUnits[] = [];

  add(costs: ApiCosts, units: HeldUnits[]): void {
    for (const [api, n] of Object.entries(costs) as Array<[PacedApi, number]>) this.declared.set(api, (this.declared.get(api) ?? 0) + n);
    this.held.push(...units);
  }

  /** Count one call to `api`; returns the held unit it uses, if one is left. A call past the declaration is an overdraw. */
  draw(api: PacedApi): HeldUnits | undefined {
    const made = (this.made.get(api) ?? 0) + 1;
    this.made.set(api, made);
    const declared = this.declared.get(api) ?? 0;
    // Judged when the call is made: a reserve() after it does not make it reserved.
    if (made > declared) this.overdraws.set(api, { api, declared, made });
    const units = this.held.find((u) => u.api === api && u.left > 0);
    if (units) units.left--;
    return units;
  }

  overdrawn(): Array<{ api: PacedApi; declared: number; made: number }> {
    return [...this.overdraws.values()];
  }

  /** Units spent for calls not made: what goes back to the budgets. A turn's units were never spent. */
  unused(): readonly HeldUnits[] {
    return this.held.filter((u) => u.left > 0 && !u.onTurn);
  }

  /** The turns its units spend on. */
  turns(): Turn[] {
    return this.held.flatMap((u) => (u.onTurn ? [u.onTurn] : []));
  }
}

const reservations = new AsyncLocalStorage<Reservation | undefined>();
/** Set while reads run that containment must not pay for (Pacer.sparing). */
const sparing = new AsyncLocalStorage<true | undefined>();
/** Set while calls run that executions which have reserved their writes are waiting on (onSharedBudget). */
const forExecutions = new AsyncLocalStorage<boolean>();

/**
 * Run calls made for many callers at once (a batch of reads): each waits its turn on the shared budget, drawn from no
 * one execution's reservation nor counted against its declaration. Made `forExecutions` (callers that have reserved
 * their writes), a call waits as a call beyond a reservation does, rather than defer actions between their
 * reservation and their write; made for others (enrichment), as any call outside an execution.
 */
export function onSharedBudget<T>(run: () => Promise<T>, { forExecutions: executions = false } = {}): Promise<T> {
  return reservations.run(undefined, () => sparing.run(undefined, () => forExecutions.run(executions, run)));
}

/** Whether the calling code runs in an execution whose calls are reserved (Pacer.within). */
export function withinExecution(): boolean {
  return reservations.getStore() !== undefined;
}

/** Whether the calling code reads for a plan (Pacer.sparing): such reads are refused when budgets are tight. */
export function readingForAPlan(): boolean {
  return sparing.getStore() === true;
}
/** Past this share of an API's window, reads made for its containment batch rather than go at once. */
const PRESSURE_SHARE = 0.75;
/** What reads for a plan may use: a tenth of each budget, and only while half of the shared budget stays free. */
const SPARE_SHARE = 0.1;
const KEEP_FOR_CONTAINMENT = 0.5;

/** The pacing a client calls before each request; absent, nothing is paced. */
export type Pace = (api: PacedApi) => Promise<void>;
