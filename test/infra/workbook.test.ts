import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryMetrics, METRIC_NAMES, type MetricName } from '../../shared/metrics';
import { INFRA, infraFiles, resources, unquote, valueAt } from './bicep';

/** The workbook charts what the engine records: every query names metrics and dimensions the code writes. */
interface WorkbookItem {
  type: number;
  name: string;
  content: { query?: string; title?: string };
}

const workbook = JSON.parse(readFileSync(join(INFRA, 'workbook.json'), 'utf8')) as { version: string; items: WorkbookItem[] };
const queries = workbook.items.filter((item) => item.content.query !== undefined).map((item) => ({ name: item.name, query: item.content.query! }));

/** The dimensions each metric carries, as the port records them: every method called once. */
function dimensionsRecorded(): Map<string, Set<string>> {
  const metrics = new MemoryMetrics();
  metrics.actionMoved('disableUser', 'new', 'planned');
  metrics.contained('disableUser', 'incident', 1, false);
  metrics.holdCreated('disableUser');
  metrics.holdDecided('disableUser', 'denied');
  metrics.retryScheduled('disableUser', 503);
  metrics.pacingWait('graph-writes', 1, 'inline');
  metrics.deadLettered('broker', 'MaxDeliveryCountExceeded');
  const found = new Map<string, Set<string>>();
  for (const point of metrics.points) found.set(point.name, new Set([...(found.get(point.name) ?? []), ...Object.keys(point.attributes)]));
  return found;
}

describe('the workbook (infra/workbook.json)', () => {
  const recorded = dimensionsRecorded();
  const named = (query: string) => [...query.matchAll(/"(responder\.[\w.]+)"/g)].map((m) => m[1]!);

  it('queries only metrics the engine records, and charts every one', () => {
    expect(workbook.version).toBe('Notebook/1.0');
    expect(queries.length).toBeGreaterThan(5);
    const known = new Set<string>(Object.values(METRIC_NAMES));
    for (const { name, query } of queries) {
      expect(named(query).length, name).toBeGreaterThan(0);
      expect(
        named(query).filter((metric) => !known.has(metric)),
        name,
      ).toEqual([]);
    }
    expect(new Set(queries.flatMap(({ query }) => named(query)))).toEqual(known);
    expect(recorded.size).toBe(known.size); // each method records on its own instrument
  });

  it('reads only dimensions the metrics it queries carry', () => {
    for (const { name, query } of queries) {
      const carried = new Set(named(query).flatMap((metric) => [...(recorded.get(metric as MetricName) ?? [])]));
      const read = [...query.matchAll(/customDimensions\.(\w+)/g)].map((m) => m[1]!);
      expect(
        read.filter((dimension) => !carried.has(dimension)),
        name,
      ).toEqual([]);
    }
  });

  it('is deployed by infra/modules/workbook.bicep over the Application Insights component it is given', async () => {
    const module = (await infraFiles()).find((file) => file.path.endsWith('modules/workbook.bicep'));
    expect(module?.errors).toEqual([]);
    const [resource] = resources(module!);
    expect(resource).toMatchObject({ type: 'Microsoft.Insights/workbooks' });
    expect(valueAt(resource!.body, 'properties.serializedData')?.text).toBe("loadTextContent('../workbook.json')");
    expect(valueAt(resource!.body, 'properties.sourceId')?.text).toBe('appInsightsId');
    expect(unquote(valueAt(resource!.body, 'kind')?.text ?? '')).toBe('shared');
  });
});
