import type { ActionKind } from './actions/catalogue';
import type { PacedApi } from './coordination/pacer';
import type { LedgerState } from './ledger/ledger';

/**
 * The engine's metrics, by what the SOC and the operator ask of it: how fast it contains, what its actions became,
 * what waits for a human, what it retried, paced and lost. Recording is synchronous and does no I/O: an adapter
 * aggregates in memory and exports on its own schedule (shared/clients/azureMonitor.ts), never on a request's path.
 */
export interface Metrics {
  /** An action entered `to`: from `from`, or created there (`new`). Every ledger write that moves an action. */
  actionMoved(kind: ActionKind, from: LedgerState | 'new', to: LedgerState): void;
  /**
   * A containment's write succeeded `seconds` after the engine recorded the action (its ledger entry's creation, the
   * first decision that planned it); `approved` when an analyst released it from a hold on the way.
   */
  contained(kind: ActionKind, source: string, seconds: number, approved: boolean): void;
  /** An action was held for a human (`pending-approval`). */
  holdCreated(kind: ActionKind): void;
  /** A held action left its hold: approved (planned, queued), denied, expired or refused. */
  holdDecided(kind: ActionKind, to: LedgerState): void;
  /** A failed attempt was scheduled again with backoff; `status` is the API's answer, if one came. */
  retryScheduled(kind: ActionKind, status: number | undefined): void;
  /**
   * A call or an action waited for an API's budget: `inline` within the call, `queued` sent for its turn, `deferred`
   * by the worker after the budget refused it.
   */
  pacingWait(api: PacedApi, seconds: number, how: PacingWaitKind): void;
  /** A message was dead-lettered (and recorded): by whom, and the broker's or the worker's reason. */
  deadLettered(by: string, reason: string): void;
}

export type PacingWaitKind = 'inline' | 'queued' | 'deferred';

/**
 * The instruments' names (OpenTelemetry), as Application Insights shows them in `customMetrics` and as
 * infra/workbook.json queries them (test/infra/workbook.test.ts holds the two together). Durations in seconds.
 */
export const METRIC_NAMES = {
  actionTransitions: 'responder.action.transitions',
  containmentDuration: 'responder.containment.duration',
  holdsCreated: 'responder.approvals.held',
  holdsDecided: 'responder.approvals.decided',
  retries: 'responder.retries',
  pacingWait: 'responder.pacing.wait',
  deadLetters: 'responder.dead_letters',
} as const;
export type MetricName = (typeof METRIC_NAMES)[keyof typeof METRIC_NAMES];

/** Attribute values are bounded to names (a broker's reason is outside text): anything else is `other`. */
export function metricLabel(value: string): string {
  return /^[A-Za-z][\w.-]{0,63}$/.test(value) ? value : 'other';
}

/** Nothing is recorded: the default when no exporter is configured. */
export const NO_METRICS: Metrics = {
  actionMoved: () => undefined,
  contained: () => undefined,
  holdCreated: () => undefined,
  holdDecided: () => undefined,
  retryScheduled: () => undefined,
  pacingWait: () => undefined,
  deadLettered: () => undefined,
};

/** One recorded point, as an exporter would see it: instrument, value, attributes. */
export interface MetricPoint {
  name: MetricName;
  value: number;
  attributes: Record<string, string | number | boolean>;
}

/**
 * Each method as one point on an instrument: the mapping every adapter shares, so the in-memory twin and the Azure
 * Monitor adapter record the same names and attributes.
 */
export function pointsOf(sink: (point: MetricPoint) => void): Metrics {
  const add = (name: MetricName, value: number, attributes: MetricPoint['attributes']) => sink({ name, value, attributes });
  return {
    actionMoved: (kind, from, to) => add(METRIC_NAMES.actionTransitions, 1, { kind, from, to }),
    contained: (kind, source, seconds, approved) => add(METRIC_NAMES.containmentDuration, seconds, { kind, source: metricLabel(source), approved }),
    holdCreated: (kind) => add(METRIC_NAMES.holdsCreated, 1, { kind }),
    holdDecided: (kind, to) => add(METRIC_NAMES.holdsDecided, 1, { kind, to }),
    retryScheduled: (kind, status) => add(METRIC_NAMES.retries, 1, { kind, status: status === undefined ? 'none' : String(status) }),
    pacingWait: (api, seconds, how) => add(METRIC_NAMES.pacingWait, seconds, { api, how }),
    deadLettered: (by, reason) => add(METRIC_NAMES.deadLetters, 1, { by: metricLabel(by), reason: metricLabel(reason) }),
  };
}

/** The in-memory twin: every point kept, for tests to read. */
export class MemoryMetrics implements Metrics {
  readonly points: MetricPoint[] = [];
  private readonly recorder = pointsOf((point) => this.points.push(point));

  actionMoved: Metrics['actionMoved'] = (...args) => this.recorder.actionMoved(...args);
  contained: Metrics['contained'] = (...args) => this.recorder.contained(...args);
  holdCreated: Metrics['holdCreated'] = (...args) => this.recorder.holdCreated(...args);
  holdDecided: Metrics['holdDecided'] = (...args) => this.recorder.holdDecided(...args);
  retryScheduled: Metrics['retryScheduled'] = (...args) => this.recorder.retryScheduled(...args);
  pacingWait: Metrics['pacingWait'] = (...args) => this.recorder.pacingWait(...args);
  deadLettered: Metrics['deadLettered'] = (...args) => this.recorder.deadLettered(...args);

  /** The points on `name` whose attributes include `attributes`. */
  of(name: MetricName, attributes: MetricPoint['attributes'] = {}): MetricPoint[] {
    return this.points.filter((p) => p.name === name && Object.entries(attributes).every(([k, v]) => p.attributes[k] === v));
  }
}

/**
 * Points recorded before their exporter is ready (it loads after start, off the cold path): kept, up to `capacity`,
 * and handed over when it is; past that they are counted as dropped, and the count said once handed over.
 */
export class BufferedMetrics {
  readonly metrics: Metrics;
  private target: ((point: MetricPoint) => void) | undefined;
  private pending: MetricPoint[] = [];
  private dropped = 0;

  constructor(private readonly capacity = 10_000) {
    this.metrics = pointsOf((point) => {
      if (this.target) this.target(point);
      else if (this.pending.length < this.capacity) this.pending.push(point);
      else this.dropped++;
    });
  }

  /** From now on points go to `sink`; those kept so far go first. Answers how many were kept and dropped. */
  attach(sink: (point: MetricPoint) => void): { replayed: number; dropped: number } {
    const kept = this.pending;
    this.pending = [];
    for (const point of kept) sink(point);
    this.target = sink;
    return { replayed: kept.length, dropped: this.dropped };
  }

  /** The exporter could not be loaded: stop keeping points. */
  discard(): number {
    const lost = this.pending.length + this.dropped;
    this.pending = [];
    this.dropped = 0;
    this.target = () => undefined;
    return lost;
  }
}
