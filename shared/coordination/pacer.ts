import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiError } from '../clients/apiError';
import { release, restamp, spend, type Budget, type BudgetAnswer, type BudgetRecord } from './budget';
import type { SharedState } from './sharedState';

/** The API budgets the engine paces itself to (reference/defender.md, graph.md). */
export const PACED_APIS = ['defender', 'graph-writes', 'idprotection'] as const;
export type PacedApi = (typeof PACED_APIS)[number];

export const DEFAULT_API_BUDGETS: Record<PacedApi, Budget[]> = {
  // 100 calls per minute and 1,500 per hour. Counted over all Defender calls: stricter than "per API", never looser.
  defender: [
    { max: 100, windowMs: 60_000 },
    { max: 1500, windowMs: 3_600_000 },
  ],
  // Identity and access writes: 3,000 per 2.5 minutes per app and tenant.
  'graph-writes': [{ max: 3000, windowMs: 150_000 }],
  // ID Protection: 1 request per second per tenant, and its 429 carries no Retry-After.
  idprotection: [{ max: 1, windowMs: 1000 }],
};

/** The ApiError code of a call the engine itself held back: the worker defers the action, spending no attempt. */
export const ENGINE_PACED = 'EnginePaced';

/** A call granted at a window's edge reaches the API a little later: windows are widened by 2% so it cannot land inside. */
const EDGE_MARGIN = 0.02;

export interface PacerOptions {
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Waits up to this long happen inside the call; longer ones become a deferral the queue carries (default 2 s). */
  maxInlineWaitMs?: number;
}

/**
 * Paces API calls to their budgets across every instance (the budgets live in SharedState), so a burst queues instead
 * of hammering an API into 429s. `take` resolves when the call may go, after a short wait if need be; when the wait
 * would be long it throws an ApiError 429 `EnginePaced` whose Retry-After is the wait: the worker then reschedules the
 * action for that moment without spending one of its attempts.
 */
export class Pacer {
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxInlineWaitMs: number;

  constructor(
    private readonly state: SharedState,
    private readonly budgets: Record<PacedApi, Budget[]> = DEFAULT_API_BUDGETS,
    options: PacerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => delay(ms));
    this.maxInlineWaitMs = options.maxInlineWaitMs ?? 2000;
  }

  /**
   * One call to `api`: drawn from the current execution's reservation if it has any left, else from the shared budget.
   * A call beyond its execution's reservation waits its turn (up to a minute) rather than strand the action half-done.
   */
  async take(api: PacedApi): Promise<void> {
    if (sparing.getStore()) return this.takeSpare(api);
    const reservation = reservations.getStore();
    const held = reservation?.get(api);
    if (!reservation) {
      await this.acquire(api, 1, this.maxInlineWaitMs);
      return;
    }
    const committedWaitMs = Math.max(this.maxInlineWaitMs, COMMITTED_WAIT_MS);
    if (!held || held.left === 0) {
      await this.acquire(api, 1, committedWaitMs);
      return;
    }
    held.left--;
    // Made within the windows' edge margin of its reservation, the call's stamp is already right: no shared write.
    if (this.now() - held.at <= Math.min(...this.budgets[api].map((b) => b.windowMs)) * EDGE_MARGIN) return;
    // Else the call goes out now, not when it was reserved: its stamp moves, and it waits if the window is full now.
    await this.until(api, committedWaitMs, (record, budgets, now) => restamp(record, budgets, held.at, now));
  }

  /**
   * Reserve every call an execution will make, before it makes any (all or nothing): a burst of actions then
   * queues whole, instead of each one spending budget on its reads and being deferred before its write, forever.
   * Throws the `EnginePaced` ApiError when a budget is spent; returns the reservation for `within`.
   */
  async reserve(costs: Partial<Record<PacedApi, number>>): Promise<Reservation> {
    const reservation: Reservation = new Map();
    try {
      for (const [api, units] of Object.entries(costs) as Array<[PacedApi, number]>) {
        if (units <= 0 || this.budgets[api].length === 0) continue;
        // A budget smaller than one execution's cost: reserve what fits, the rest waits its turn inside.
        const fits = Math.min(units, ...this.budgets[api].map((b) => b.max));
        const at = await this.acquire(api, fits, this.maxInlineWaitMs);
        reservation.set(api, { left: fits, at });
      }
    } catch (error) {
      // One API's budget is spent: the action is deferred whole, so the units it reserved from the others go back. If
      // giving them back fails, they stay spent: the budget then counts too many calls, never too few.
      for (const [api, { left, at }] of reservation) {
        await this.state.update<BudgetRecord, void>(`pace:${api}`, (record) => ({ next: release(record, at, left), result: undefined })).catch(() => undefined);
      }
      throw error;
    }
    return reservation;
  }

  /**
   * Run reads that containment must not pay for (a what-if plan): inside, each call is made only if it fits a small
   * budget of its own (a tenth of the API's) and leaves at least half of the API's shared budget free for containment;
   * otherwise it is refused at once with the `EnginePaced` ApiError, and the caller goes without the data.
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
    const refuse = (wait: number) =>
      new ApiError(api === 'defender' ? 'defender' : 'graph', 429, ENGINE_PACED, `not read: the ${api} budget is kept for containment`, wait);
    const mine = await this.state.update<BudgetRecord, BudgetAnswer>(`pace-spare:${api}`, (record) => spend(record, own, this.now()));
    if (!mine.granted) throw refuse(mine.retryAt - this.now());
    // The shared windows are widened as `until` widens them, so the two count the same calls.
    const shared = budgets.map((b) => ({ max: b.max, windowMs: Math.ceil(b.windowMs * (1 + EDGE_MARGIN)) }));
    const answer = await this.state.update<BudgetRecord, BudgetAnswer>(`pace:${api}`, (record) => spend(record, shared, this.now(), 1, KEEP_FOR_CONTAINMENT));
    if (!answer.granted) throw refuse(answer.retryAt - this.now());
  }

  /** Run an execution with its reservation: the clients' `take` draws on it. */
  within<T>(reservation: Reservation, run: () => Promise<T>): Promise<T> {
    return reservations.run(reservation, run);
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
    const budgets = this.budgets[api].map((b) => ({ max: b.max, windowMs: Math.ceil(b.windowMs * (1 + EDGE_MARGIN)) }));
    for (;;) {
      if (budgets.length === 0) return this.now();
      // The clock is read inside the swap, not before it: calls wait their turn for the shared record (this process
      // chains its writes to it), and a stamp taken before that wait would be older than the call, so the windows
      // would admit more calls than the API counts in them.
      const { answer, at } = await this.state.update<BudgetRecord, { answer: BudgetAnswer; at: number }>(`pace:${api}`, (record) => {
        const now = this.now();
        const { next, result } = change(record, budgets, now);
        return { next, result: { answer: result, at: now } };
      });
      if (answer.granted) return at;
      const wait = Math.max(1, answer.retryAt - this.now());
      if (wait > maxWaitMs) {
        const said = this.budgets[api].map((b) => `${b.max} per ${b.windowMs / 1000} s`).join(' and ');
        throw new ApiError(api === 'defender' ? 'defender' : 'graph', 429, ENGINE_PACED, `paced by the engine: the ${api} budget (${said}) is spent`, wait);
      }
      await this.sleep(wait);
    }
  }
}

/** Calls an execution reserved and has not made yet, per API, and when they were reserved. */
export type Reservation = Map<PacedApi, { left: number; at: number }>;

const reservations = new AsyncLocalStorage<Reservation>();
/** Set while reads run that containment must not pay for (Pacer.sparing). */
const sparing = new AsyncLocalStorage<true>();
/** What reads for a plan may use: a tenth of each budget, and only while half of the shared budget stays free. */
const SPARE_SHARE = 0.1;
const KEEP_FOR_CONTAINMENT = 0.5;

/** How long a call beyond its execution's reservation may wait inline. */
const COMMITTED_WAIT_MS = 60_000;

/** The pacing a client calls before each request; absent, nothing is paced. */
export type Pace = (api: PacedApi) => Promise<void>;
