/**
 * Latency at a rate the quotas carry — a quarter of the isolate API's budget, since each isolation also reads its
 * machine actions twice (before its post and to follow it) from an API with the same budget — so it measures the
 * pipeline, not the pacing:
 * incidents of one risky user and one risky device, enrichment on, from POST /api/incidents to the isolate call
 * arriving at Defender.
 */
import { OUTBREAK_POLICY } from './outbreak';
import { addRiskyPair, deviceId, incidentFor, pause, percentile, post, startHost, type Figure, type World } from './harness';

const SECONDS = 20;
const WARM_UP = 5;

export async function runLatency(world: World, scale: number, first: number): Promise<{ lines: string[]; figures: Figure[] }> {
  const tenant = world.sandbox.tenant;
  // A quarter of 100 isolations a minute, in compressed time.
  const rate = (0.25 * 100 * scale) / 60;
  const count = Math.round(rate * SECONDS);
  for (let n = 0; n < count + WARM_UP; n++) addRiskyPair(world.sandbox, first + n);
  const host = await startHost(world, 'benchlatency', { RESPONDER_POLICY: OUTBREAK_POLICY, RESPONDER_ENRICHMENT: 'on', RESPONDER_TIME_SCALE: String(scale) });
  // A few incidents first, not measured: the host's first calls pay for tokens, connections and the first risky-user list.
  const warmUp = Array.from({ length: WARM_UP }, (_, n) => deviceId(first + count + n));
  await Promise.all(warmUp.map((_, n) => post(host.base, world.token, incidentFor(first + count + n))));
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await pause(100)) {
    if (warmUp.every((id) => tenant.machineActions.some((a) => a.machineId === id))) break;
  }
  const sentAt = new Map<string, number>();
  const sends: Array<Promise<number>> = [];
  const start = Date.now();
  for (let n = 0; n < count; n++) {
    await pause(Math.max(0, start + (n * 1000) / rate - Date.now()));
    sentAt.set(deviceId(first + n), Date.now());
    sends.push(post(host.base, world.token, incidentFor(first + n)));
  }
  await Promise.all(sends);
  const latencies: number[] = [];
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await pause(250)) {
    latencies.length = 0;
    for (const action of tenant.machineActions) {
      const sent = sentAt.get(action.machineId);
      if (sent !== undefined && action.type === 'Isolate') latencies.push(Date.parse(action.creationDateTimeUtc) - sent);
    }
    if (latencies.length >= sentAt.size) break;
  }
  host.child.kill('SIGTERM');
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  return {
    lines: [`${count} incidents at ${rate.toFixed(1)}/s for ${SECONDS} s (a quarter of the compressed isolate budget); ${latencies.length}/${count} isolated`],
    figures: [
      { name: 'POST -> isolate call, p50 (ms)', value: p50.toFixed(0), target: 'reported', ok: true },
      { name: 'POST -> isolate call, p99 (ms)', value: p99.toFixed(0), target: '<= 250', ok: p99 <= 250 && latencies.length === count },
    ],
  };
}
