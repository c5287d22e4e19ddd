import type { TokenCredential } from '@azure/identity';
import { AzureMonitorMetricExporter } from '@azure/monitor-opentelemetry-exporter';
import type { Counter, Histogram } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { METRIC_NAMES, type MetricName, type MetricPoint } from '../metrics';

/**
 * The metrics' Azure Monitor adapter: OpenTelemetry instruments aggregated in memory and exported to Application
 * Insights' ingestion endpoint (customMetrics), authenticated with Entra. Only the exporter and the metrics SDK, not
 * the @azure/monitor-opentelemetry distro (traces, logs, instrumentations: slower to load and far larger), and loaded
 * by dynamic import after start (composition.ts): this module is never on the cold-start path. Logs are not sent here:
 * the Functions host already sends what the invocation context logs.
 */
export interface AzureMonitorMetricsOptions {
  /** APPLICATIONINSIGHTS_CONNECTION_STRING: the resource's instrumentation key and ingestion endpoint. */
  connectionString: string;
  /** The identity that holds Monitoring Metrics Publisher on the Application Insights resource. */
  credential: TokenCredential;
  /** How often points are sent (OpenTelemetry's default: 60 s). */
  exportIntervalMs?: number;
  /** Where the exporter keeps batches it could not send, to send them later; tests turn it off. */
  disableOfflineStorage?: boolean;
}

export interface AzureMonitorMetrics {
  record(point: MetricPoint): void;
  /** Send what is aggregated now (before the instance stops; tests). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Durations are histograms (count, sum, min, max reach customMetrics); everything else counts. */
const HISTOGRAMS = new Set<MetricName>([METRIC_NAMES.containmentDuration, METRIC_NAMES.pacingWait]);

const DESCRIPTIONS: Record<MetricName, string> = {
  [METRIC_NAMES.actionTransitions]: 'Actions entering a ledger state, by kind, from and to',
  [METRIC_NAMES.containmentDuration]: "From the engine's first decision on an action to its write's success",
  [METRIC_NAMES.holdsCreated]: 'Actions held for a human (pending-approval)',
  [METRIC_NAMES.holdsDecided]: 'Held actions leaving their hold, by the state they went to',
  [METRIC_NAMES.retries]: 'Failed attempts scheduled again with backoff',
  [METRIC_NAMES.pacingWait]: "Waits for an API's budget, by API and how the action waited",
  [METRIC_NAMES.deadLetters]: 'Messages dead-lettered, by who and why',
};

export function openAzureMonitorMetrics(options: AzureMonitorMetricsOptions): AzureMonitorMetrics {
  const exporter = new AzureMonitorMetricExporter({
    connectionString: options.connectionString,
    credential: options.credential,
    ...(options.disableOfflineStorage && { disableOfflineStorage: true }),
  });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'sentinel-responder' }),
    readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: options.exportIntervalMs ?? 60_000 })],
  });
  const meter = provider.getMeter('sentinel-responder');
  const instruments = new Map<MetricName, Counter | Histogram>(
    Object.values(METRIC_NAMES).map((name) => [
      name,
      HISTOGRAMS.has(name)
        ? meter.createHistogram(name, { description: DESCRIPTIONS[name], unit: 's' })
        : meter.createCounter(name, { description: DESCRIPTIONS[name] }),
    ]),
  );
  return {
    record({ name, value, attributes }) {
      const instrument = instruments.get(name);
      if (instrument && 'record' in instrument) instrument.record(value, attributes);
      else instrument?.add(value, attributes);
    },
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
