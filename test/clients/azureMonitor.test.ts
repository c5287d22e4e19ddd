import { ManagedIdentityCredential } from '@azure/identity';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAzureMonitorMetrics } from '../../shared/clients/azureMonitor';
import { resetConfig } from '../../shared/config';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { BufferedMetrics, METRIC_NAMES, pointsOf } from '../../shared/metrics';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { configureRuntime, flushMetrics, runtime } from '../../shared/runtime';
import { SANDBOX_TENANT_ID } from '../../sandbox/authority';
import { Sandbox } from '../../sandbox/server';
import { sandboxTls } from '../../sandbox/tls';

/**
 * The Azure Monitor adapter against a wire-level stand-in of Application Insights' ingestion endpoint
 * (`POST {IngestionEndpoint}/v2.1/track`, Breeze envelopes): the real exporter, the real managed identity credential
 * (the sandbox's App Service-style endpoint mints the token), and a server that checks the token as Entra-authenticated
 * ingestion would: signed by the tenant's authority, for https://monitor.azure.com.
 */
interface Envelope {
  name: string;
  iKey: string;
  data: { baseType: string; baseData: { metrics: Array<{ name: string; value: number; count: number; max?: number }>; properties: Record<string, string> } };
}

const IKEY = '6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
let sandbox: Sandbox;
let ingestion: Server;
let endpoint: string;
const received: Envelope[] = [];
const refused: string[] = [];
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  sandbox = await Sandbox.start();
  // The managed identity endpoint the credential finds, as App Service sets it; Microsoft's own SDK usage beacon off.
  const env = { ...sandbox.settings(), APPLICATION_INSIGHTS_NO_STATSBEAT: 'true', APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true' };
  for (const [name, value] of Object.entries(env)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
  const keys = jose.createLocalJWKSet(sandbox.authority.jwks);
  const tls = sandboxTls();
  ingestion = createServer({ key: readFileSync(tls.keyPath), cert: readFileSync(tls.certPath) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
        try {
          if (req.method !== 'POST' || req.url !== '/v2.1/track') throw new Error(`${req.method} ${req.url}`);
          await jose.jwtVerify(token ?? '', keys, { audience: 'https://monitor.azure.com', issuer: `https://sts.windows.net/${SANDBOX_TENANT_ID}/` });
        } catch (error) {
          refused.push((error as Error).message);
          res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ itemsReceived: 0, itemsAccepted: 0, errors: [] }));
          return;
        }
        const raw = Buffer.concat(chunks);
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        const envelopes = JSON.parse(body.toString('utf8')) as Envelope[];
        received.push(...envelopes);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ itemsReceived: envelopes.length, itemsAccepted: envelopes.length, errors: [] }));
      })();
    });
  });
  await new Promise<void>((resolve) => ingestion.listen(0, '127.0.0.1', resolve));
  endpoint = `https://127.0.0.1:${(ingestion.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  for (const [name, value] of Object.entries(saved))
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  await new Promise((resolve) => ingestion.close(resolve));
  await sandbox.close();
});

/** The metric points the stand-in received, by name: each with its value (a histogram's sum), count and dimensions. */
function metricsReceived(): Array<{ name: string; value: number; count: number; properties: Record<string, string> }> {
  return received
    .filter((e) => e.data.baseType === 'MetricData')
    .flatMap((e) => e.data.baseData.metrics.map((m) => ({ name: m.name, value: m.value, count: m.count, properties: e.data.baseData.properties })));
}

describe('the Azure Monitor metrics adapter', () => {
  it("sends each instrument's points to the ingestion endpoint with an Entra token from the managed identity", async () => {
    const exporter = openAzureMonitorMetrics({
      connectionString: `InstrumentationKey=${IKEY};IngestionEndpoint=${endpoint}`,
      credential: new ManagedIdentityCredential({ clientId: '0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e' }),
      exportIntervalMs: 3_600_000,
      disableOfflineStorage: true,
    });
    // Recorded before the exporter existed, through the buffer composition uses, then replayed into it.
    const buffer = new BufferedMetrics();
    buffer.metrics.actionMoved('isolateDevice', 'running', 'succeeded');
    expect(buffer.attach((point) => exporter.record(point))).toEqual({ replayed: 1, dropped: 0 });
    const metrics = pointsOf((point) => exporter.record(point));
    metrics.actionMoved('isolateDevice', 'running', 'succeeded');
    metrics.contained('isolateDevice', 'incident', 12.5, false);
    metrics.contained('isolateDevice', 'incident', 7.5, false);
    metrics.holdCreated('disableUser');
    metrics.holdDecided('disableUser', 'planned');
    metrics.retryScheduled('revokeSessions', 503);
    metrics.pacingWait('defender-isolate', 42, 'queued');
    metrics.deadLettered('broker', 'MaxDeliveryCountExceeded');
    await exporter.flush();
    await exporter.shutdown();

    expect(refused).toEqual([]);
    expect(received.every((e) => e.iKey === IKEY)).toBe(true);
    const points = metricsReceived();
    expect(new Set(points.map((p) => p.name))).toEqual(new Set(Object.values(METRIC_NAMES)));
    const named = (name: string) => points.filter((p) => p.name === name);
    expect(named(METRIC_NAMES.actionTransitions)).toEqual([
      { name: METRIC_NAMES.actionTransitions, value: 2, count: 1, properties: { kind: 'isolateDevice', from: 'running', to: 'succeeded' } },
    ]);
    // A histogram arrives as its sum, count, min and max: customMetrics' value, valueCount, valueMin, valueMax.
    expect(named(METRIC_NAMES.containmentDuration)).toEqual([
      { name: METRIC_NAMES.containmentDuration, value: 20, count: 2, properties: { kind: 'isolateDevice', source: 'incident', approved: 'false' } },
    ]);
    expect(named(METRIC_NAMES.pacingWait)[0]).toMatchObject({ value: 42, count: 1, properties: { api: 'defender-isolate', how: 'queued' } });
    expect(named(METRIC_NAMES.retries)[0]).toMatchObject({ value: 1, properties: { kind: 'revokeSessions', status: '503' } });
    expect(named(METRIC_NAMES.deadLetters)[0]).toMatchObject({ value: 1, properties: { by: 'broker', reason: 'MaxDeliveryCountExceeded' } });
    expect(named(METRIC_NAMES.holdsDecided)[0]).toMatchObject({ value: 1, properties: { kind: 'disableUser', to: 'planned' } });
  });
});

describe('metrics as the engine sends them (composition, APPLICATIONINSIGHTS_* settings)', () => {
  it('keeps what is recorded before the exporter loads, and sends it when the host stops the instance', async () => {
    received.length = 0;
    Object.assign(process.env, {
      APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${IKEY};IngestionEndpoint=${endpoint}`,
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e;Authorization=AAD',
      LOG_LEVEL: 'silent',
    });
    resetConfig();
    configureRuntime({ ledger: new MemoryLedger(), queue: new EmbeddedQueue() });
    try {
      const { ledger } = await runtime();
      await ledger.recordDeadLetter({
        messageId: 'm-1',
        at: new Date().toISOString(),
        by: 'broker',
        reason: 'TTLExpiredException',
        description: 'expired',
        body: '{}',
      });
      await flushMetrics(); // as app.hook.appTerminate does: the exporter was not loaded yet (its timer is 10 s)
    } finally {
      delete process.env.APPLICATIONINSIGHTS_CONNECTION_STRING;
      delete process.env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING;
      resetConfig();
      configureRuntime({});
    }
    expect(refused).toEqual([]);
    expect(metricsReceived()).toEqual([{ name: METRIC_NAMES.deadLetters, value: 1, count: 1, properties: { by: 'broker', reason: 'TTLExpiredException' } }]);
  });
});

describe('points recorded before the exporter loads', () => {
  it('are kept up to the buffer, replayed in order, and the rest counted as dropped', () => {
    const buffer = new BufferedMetrics(2);
    for (const to of ['planned', 'queued', 'running'] as const) buffer.metrics.actionMoved('disableUser', 'new', to);
    const sent: string[] = [];
    expect(buffer.attach((point) => sent.push(String(point.attributes.to)))).toEqual({ replayed: 2, dropped: 1 });
    buffer.metrics.actionMoved('disableUser', 'running', 'succeeded');
    expect(sent).toEqual(['planned', 'queued', 'succeeded']);
  });

  it('are let go when the exporter cannot start, and nothing is kept after', () => {
    const buffer = new BufferedMetrics(1);
    buffer.metrics.retryScheduled('disableUser', 429);
    buffer.metrics.retryScheduled('disableUser', 429);
    expect(buffer.discard()).toBe(2);
    buffer.metrics.retryScheduled('disableUser', 429);
    expect(buffer.attach(() => undefined)).toEqual({ replayed: 0, dropped: 0 });
  });
});
