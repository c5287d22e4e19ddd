/**
 * An outbreak at Defender's real limits: 1,000 incidents at once, one risky user and one risky device each, enrichment
 * on, each Defender API, ID Protection and Graph writes held to their documented limits (the sandbox throttles Graph
 * reads and ARM not at all), the engine's clocks and the APIs' windows compressed by one factor.
 * The engine cannot contain faster than the isolate API admits isolations (100 a minute, 1,500 an hour): that floor is
 * the yardstick. Contained = every user disabled and every isolation accepted by Defender (201).
 */
import { defenderApiOf } from '../sandbox/tenant';
import { openTableLedger } from '../shared/ledger/tableLedger';
import type { LedgerEntry } from '../shared/ledger/ledger';
import { addRiskyPair, deviceId, incidentFor, pause, peakRssMiB, post, progress, startHost, userId, type Figure, type World } from './harness';

export const OUTBREAK = 1000;

/** Isolations and disables need the users' and devices' risk: enrichment must read it, at the APIs' real limits. */
export const OUTBREAK_POLICY = `version: 1
mode: enforce
guardrails:
  approvals:
    - { action: disableUser, when: { privileged: true }, reason: privileged account }
    - { action: isolateDevice, when: { deviceTags: [critical] }, reason: critical device }
rules:
  - { id: risky-users, when: { entity: account, userRisk: [high] }, then: [disableUser] }
  - { id: risky-devices, when: { entity: host, deviceRisk: [High] }, then: [isolateDevice] }
`;

/** The isolate API's documented budgets (reference/defender.md). */
const ISOLATE_BUDGETS = [
  { max: 100, windowMs: 60_000 },
  { max: 1500, windowMs: 3_600_000 },
];

/** When the n-th of `n` calls can go at the earliest, from an idle start, under every budget: the API's own floor. */
export function floorMs(n: number, budgets: ReadonlyArray<{ max: number; windowMs: number }>): number {
  const at: number[] = [];
  for (let k = 0; k < n; k++) {
    let t = at[k - 1] ?? 0;
    for (const { max, windowMs } of budgets) if (k >= max) t = Math.max(t, (at[k - max] as number) + windowMs);
    at.push(t);
  }
  return at[n - 1] ?? 0;
}

/** States an action leaves on its own; anything else is final (or a human's to decide). */
const UNDERWAY = new Set(['planned', 'queued', 'running']);

export async function runOutbreak(world: World, scale: number): Promise<{ lines: string[]; figures: Figure[] }> {
  const { sandbox } = world;
  const tenant = sandbox.tenant;
  for (let i = 0; i < OUTBREAK; i++) addRiskyPair(sandbox, i);
  // Defender completes an isolation within seconds of accepting it.
  tenant.actionCompletionMs = 10_000 / scale;
  const compress = <T extends { windowMs: number }>(b: T): T => ({ ...b, windowMs: b.windowMs / scale });
  tenant.setDefenderQuota(compress({ max: 100, windowMs: 60_000 }));
  tenant.idProtectionQuota = compress({ max: 1, windowMs: 1000 });
  tenant.graphWriteQuota = compress({ max: 3000, windowMs: 150_000 });
  const callsBefore = tenant.calls.length;

  const host = await startHost(world, 'benchoutbreak', { RESPONDER_POLICY: OUTBREAK_POLICY, RESPONDER_ENRICHMENT: 'on', RESPONDER_TIME_SCALE: String(scale) });
  progress('host up; sending the outbreak');
  const started = Date.now();
  const pending = Array.from({ length: OUTBREAK }, (_, i) => i);
  const statuses = (
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const got: number[] = [];
        for (let i = pending.shift(); i !== undefined; i = pending.shift()) got.push(await post(host.base, world.token, incidentFor(i)));
        return got;
      }),
    )
  ).flat();
  const accepted = statuses.filter((s) => s === 202).length;
  progress(`outbreak sent in ${Date.now() - started} ms (${accepted} accepted)`);

  const floor = floorMs(OUTBREAK, ISOLATE_BUDGETS.map(compress));
  const ledger = await openTableLedger({ connectionString: world.azurite.connectionString }, 'benchoutbreak');
  const isolated = (): number => new Set(tenant.machineActions.filter((a) => a.type === 'Isolate').map((a) => a.machineId)).size;
  const disabled = (): number => {
    let n = 0;
    for (let i = 0; i < OUTBREAK; i++) if (tenant.users.get(userId(i))?.accountEnabled === false) n++;
    return n;
  };
  let entries: LedgerEntry[] = [];
  for (const deadline = started + 4 * floor + 120_000; Date.now() < deadline; await pause(500)) {
    if (isolated() >= OUTBREAK && disabled() >= OUTBREAK) {
      entries = await ledger.list({});
      if (entries.every((e) => !UNDERWAY.has(e.state)) && world.broker.isDrained('actions')) break;
    }
    progress(`${disabled()} users disabled, ${isolated()} devices isolated, broker ${JSON.stringify(world.broker.stats('actions'))}`);
  }
  entries = await ledger.list({});
  const rss = peakRssMiB(host.child);
  host.child.kill('SIGTERM');

  const calls = tenant.calls.slice(callsBefore);
  const defender = calls.filter((c) => c.path.startsWith('/api/'));
  const byApi = new Map<string, number>();
  for (const call of defender) {
    const api = defenderApiOf(call) ?? 'other';
    byApi.set(api, (byApi.get(api) ?? 0) + 1);
  }
  const accept = calls.filter((c) => c.method === 'POST' && /\/isolate$/.test(c.path) && c.status === 201);
  const disables = calls.filter((c) => c.method === 'PATCH' && /^\/v1\.0\/users\//.test(c.path) && c.status < 300);
  // When each hundredth isolation was accepted, against the floor's pace of a window's worth per window.
  const acceptedAt = accept.map((c) => (c.at ?? 0) - started).sort((a, b) => a - b);
  const everyHundred = acceptedAt.filter((_, i) => (i + 1) % 100 === 0).map((ms) => (ms / 1000).toFixed(1));
  const lastContained = Math.max(...accept.map((c) => c.at ?? 0), ...disables.map((c) => c.at ?? 0));
  const containMs = lastContained - started;
  const isolatePosts = new Map<string, number>();
  for (const a of tenant.machineActions) if (a.type === 'Isolate') isolatePosts.set(a.machineId, (isolatePosts.get(a.machineId) ?? 0) + 1);
  const postsPerDevice = Array.from({ length: OUTBREAK }, (_, i) => isolatePosts.get(deviceId(i)) ?? 0);
  const disablesPerUser = new Map<string, number>();
  for (const c of disables) disablesPerUser.set(c.path, (disablesPerUser.get(c.path) ?? 0) + 1);

  // For want of data: a device whose isolation was held for a human, or never planned at all.
  const byDevice = new Map(entries.filter((e) => e.kind === 'isolateDevice').map((e) => [targetId(e), e]));
  const wantingData = Array.from({ length: OUTBREAK }, (_, i) => byDevice.get(deviceId(i))).filter((e) => !e || e.state === 'pending-approval').length;
  const lost = entries.filter((e) => UNDERWAY.has(e.state)).length + (OUTBREAK - accepted);
  const duplicated = postsPerDevice.filter((n) => n > 1).length + [...disablesPerUser.values()].filter((n) => n > 1).length;
  const throttled = calls.filter((c) => c.status === 429).length;
  const ratio = containMs / floor;
  const perIsolation = defender.length / OUTBREAK;
  const exactlyOne = postsPerDevice.every((n) => n === 1);
  const fmt = (n: number, d = 2): string => n.toFixed(d);
  return {
    lines: [
      `time compressed ${scale}x: the isolate API's floor for ${OUTBREAK} isolations is ${fmt(floor / 1000, 1)} s (${fmt((floor * scale) / 60_000, 1)} min at real time)`,
      `accepted ${accepted}/${OUTBREAK}; contained in ${fmt(containMs / 1000, 1)} s; ${defender.length} Defender calls, ${calls.length} API calls in all`,
      `isolations accepted by the 100th, 200th, …: ${everyHundred.join(', ')} s (the floor: 0, 10, 20, … s)`,
      `Defender calls by API: ${[...byApi].map(([api, n]) => `${api} ${n}`).join(', ')}`,
    ],
    figures: [
      { name: 'time to contain / isolate floor', value: fmt(ratio), target: '<= 1.15', ok: ratio <= 1.15 },
      { name: 'Defender calls per isolation', value: fmt(perIsolation), target: '<= 1.50', ok: perIsolation <= 1.5 },
      {
        name: 'accepted isolate POSTs per isolation',
        value: `${Math.min(...postsPerDevice)}..${Math.max(...postsPerDevice)}`,
        target: 'exactly 1',
        ok: exactlyOne,
      },
      { name: 'share answered 429', value: `${fmt((throttled / calls.length) * 100)}%`, target: '<= 0.5%', ok: throttled / calls.length <= 0.005 },
      { name: 'devices held or not planned for want of data', value: String(wantingData), target: '0', ok: wantingData === 0 },
      { name: 'lost, duplicated', value: `${lost}, ${duplicated}`, target: '0, 0', ok: lost === 0 && duplicated === 0 },
      { name: "worker's peak RSS, 512 MB instance (MiB)", value: fmt(rss, 0), target: '<= 200', ok: rss <= 200 },
    ],
  };
}

/** The Defender id an isolateDevice entry acts on. */
function targetId(entry: LedgerEntry): string | undefined {
  return entry.target.type === 'device' ? entry.target.id?.toLowerCase() : undefined;
}
