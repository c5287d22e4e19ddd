/**
 * npm run bench — the engine's performance targets, as ratios measured in one run (this machine is shared and noisy;
 * absolute times are printed for context only).
 *  1. Per incident: normalize + decide, against JSON.parse of the same payload. Targets: small (2 entities) <= 3x,
 *     large (200 entities, 50 alerts) <= 2x, with the default policy: microseconds on a request that spends
 *     milliseconds on tokens, Table writes and the queue, so the budget leaves room for every check the inputs need.
 *  2. Cold start: importing the compiled function entry points, against importing @azure/functions alone, each in
 *     a fresh process. Target: <= 3x.
 *  3. The action pipeline under a burst and at a steady rate: see bench/pipeline.ts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadPolicy } from '../shared/composition';
import { decide } from '../shared/policy/decide';
import { normalizeSentinelPayload } from '../shared/signals/sentinel';
import { buildIncident } from '../test/fixtures/incidents';

const policy = loadPolicy({ policyText: undefined, policyPath: undefined, engineIdentities: ['30000000-0000-4000-8000-000000000000'] });

/** Median time per call of `fn`, in microseconds, over `rounds` rounds of `batch` calls. */
function timePerCall(fn: () => unknown, batch: number, rounds: number): number[] {
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1000 / batch);
  }
  return samples;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function decideBench(
  name: string,
  payload: unknown,
  batch: number,
): { name: string; parseUs: number; decideUs: number; ratio: number; spread: [number, number]; actions: number; bytes: number } {
  const text = JSON.stringify(payload);
  const parsed = JSON.parse(text);
  const run = () => decide(normalizeSentinelPayload(parsed), policy, { modeOverride: 'enforce' });
  // Warm both paths, then interleave rounds so both see the same machine load.
  for (let i = 0; i < batch * 5; i++) {
    JSON.parse(text);
    run();
  }
  const parse: number[] = [];
  const decided: number[] = [];
  // No forced gc() between batches: after a full collection V8 shrinks the young generation, and the next
  // allocation-heavy batch pays for extra scavenges. A Functions worker never forces a collection, so neither does
  // the benchmark.
  for (let round = 0; round < 15; round++) {
    parse.push(...timePerCall(() => JSON.parse(text), batch, 1));
    decided.push(...timePerCall(run, batch, 1));
  }
  const parseUs = median(parse);
  const decideUs = median(decided);
  // Each round's own ratio (its two batches ran back to back): their range shows how much the machine moved the figure.
  const roundRatios = decided.map((d, i) => d / (parse[i] as number)).sort((a, b) => a - b);
  const spread: [number, number] = [roundRatios[0] as number, roundRatios[roundRatios.length - 1] as number];
  return { name, parseUs, decideUs, ratio: decideUs / parseUs, spread, actions: run().actions.length + run().skipped.length, bytes: text.length };
}

function coldStartBench(runs: number): { bareMs: number; entryMs: number; ratio: number } {
  const root = path.join(__dirname, '..');
  const entries = readdirSync(path.join(root, 'functions'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => path.join(root, 'functions', f));
  // Each measurement is a fresh process, timing only the require() calls, as the Functions host's worker loads "main".
  const probe = (files: string[]) =>
    Number(
      execFileSync(
        process.execPath,
        [
          '-e',
          `const t=process.hrtime.bigint();for(const f of ${JSON.stringify(files)})require(f);process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`,
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] },
      ).toString(),
    );
  const bare: number[] = [];
  const entry: number[] = [];
  for (let i = 0; i < runs; i++) {
    bare.push(probe(['@azure/functions']));
    entry.push(probe(entries));
  }
  const bareMs = median(bare);
  const entryMs = median(entry);
  return { bareMs, entryMs, ratio: entryMs / bareMs };
}

const small = { ...decideBench('small incident (2 entities)', buildIncident({ accounts: 1, hosts: 1 }), 2000), target: 3 };
const large = {
  ...decideBench('large incident (200 entities, 50 alerts)', buildIncident({ accounts: 100, hosts: 60, others: 40, alerts: 50 }), 100),
  target: 2,
};
const cold = coldStartBench(15);

const fmt = (n: number, digits = 2) => n.toFixed(digits);
console.log('\nnormalize + decide vs JSON.parse of the same payload (median per incident over 15 rounds)');
for (const r of [small, large]) {
  console.log(
    `  ${r.name.padEnd(42)} ${String(r.bytes).padStart(7)} bytes  parse ${fmt(r.parseUs, 1).padStart(7)} µs  decide ${fmt(r.decideUs, 1).padStart(7)} µs  ratio ${fmt(r.ratio)} (rounds ${fmt(r.spread[0])}–${fmt(r.spread[1])}; target <= ${fmt(r.target)})  ${r.ratio <= r.target ? 'ok' : 'OVER TARGET'}  (${r.actions} actions judged)`,
  );
}
console.log('\ncold start: import the compiled function entry points vs @azure/functions alone (median of 15 fresh processes; target ratio <= 3.00)');
console.log(
  `  @azure/functions ${fmt(cold.bareMs, 1)} ms  entry points ${fmt(cold.entryMs, 1)} ms  ratio ${fmt(cold.ratio)}  ${cold.ratio <= 3 ? 'ok' : 'OVER TARGET'}`,
);
console.log('');
if (small.ratio > small.target || large.ratio > large.target || cold.ratio > 3) process.exitCode = 1;

// 3. The pipeline (bench/pipeline.ts), in a process that trusts a throwaway CA for the HTTPS sandbox.
void (async () => {
  const { createSandboxTls } = await import('../sandbox/tlsMaterial.mjs');
  const tls = createSandboxTls(mkdtempSync(path.join(tmpdir(), 'responder-bench-tls-')));
  const pipeline = spawnSync(process.execPath, [path.join(__dirname, 'pipeline.js')], {
    stdio: 'inherit',
    env: { ...process.env, NODE_EXTRA_CA_CERTS: tls.caPath, RESPONDER_SANDBOX_TLS_DIR: tls.dir },
  });
  if (pipeline.status !== 0) process.exitCode = 1;
})();
