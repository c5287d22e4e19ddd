import { ROLES } from '../shared/auth/caller';
import { classifyFailure } from '../shared/actions/failure';
import { defineHttpFunction, problem } from '../shared/azure/httpFunction';
import { defineTimerFunction } from '../shared/azure/timerFunction';
import { InputError, quote, RefusedError } from '../shared/errors';
import { runtime } from '../shared/runtime';
import { SWEEP_NAMES, SWEEPS, sweepNamed, sweepSchedule } from '../shared/sweeps/catalogue';

/**
 * Each remediation sweep on its schedule (RESPONDER_SWEEP_<NAME>, NCRONTAB), as `sweep<Name>`. A run another instance
 * holds is skipped; one that runs out of time stops after a page, and the next goes on from there. What a run found or
 * planned is a warning: a sweep finds what the event-driven paths missed.
 */
export const sweepTimers = SWEEP_NAMES.map((name) =>
  defineTimerFunction({
    name: `sweep${name[0]?.toUpperCase()}${name.slice(1)}`,
    schedule: sweepSchedule(name),
    async handle(_timer, log) {
      const { sweeps } = await runtime();
      const run = await sweeps.run(name);
      if (run.found > 0 || run.planned > 0) log.warn({ sweep: run.sweep, found: run.found, planned: run.planned }, run.summary);
    },
  }),
);

/** How long a sweep asked for over HTTP works before it stops after a page. */
export const ON_DEMAND_BUDGET_MS = 20_000;

/**
 * POST /api/sweeps/{name} — run a sweep now (`responder sweep <name>`), or with `?dryRun=true` say what it would do
 * and change nothing. Answers 200 with the run: what it found, planned, passed over, and where it stopped.
 */
export const runSweep = defineHttpFunction({
  name: 'runSweep',
  route: 'sweeps/{name}',
  methods: ['POST'],
  auth: { roles: [ROLES.act] },
  async handle({ request, caller, context, log }) {
    const name = sweepNamed(request.params.name);
    if (!name)
      throw new RefusedError(404, 'NoSuchSweep', `no sweep ${JSON.stringify(request.params.name?.slice(0, 40))}: the sweeps are ${SWEEP_NAMES.join(', ')}`);
    const dryRun = dryRunOf(request.query);
    const { sweeps } = await runtime();
    // Asked over HTTP, a run answers within ON_DEMAND_BUDGET_MS (the CLI waits 30 s, Azure's front end 230 s) and says
    // whether it paused; the next run, asked or scheduled, goes on from its place.
    try {
      const run = await sweeps.run(name, { dryRun, by: caller?.objectId ?? `sweep:${name}`, budgetMs: ON_DEMAND_BUDGET_MS });
      return { status: 200, jsonBody: { run } };
    } catch (error) {
      // An API the sweep reads failed or is paced (a dry run reads only what containment can spare): not the caller's
      // fault, nor a bug; the run is recorded failed and the next goes on from its place.
      const why = classifyFailure(error);
      log.warn({ sweep: name, dryRun, class: why.class }, `sweep ${name} failed: ${why.detail}`);
      const retryAfter = String(Math.max(1, Math.ceil((why.retryAfterMs ?? 60_000) / 1000)));
      return problem(503, 'SweepFailed', `sweep ${name} failed: ${why.detail}`, context, { 'Retry-After': retryAfter });
    }
  },
});

/**
 * GET /api/sweeps — each sweep: its schedule (and the setting that sets it), whether a run holds it now, whether the
 * next run goes on from a place, and its last runs (the last with its first findings). `responder sweeps` prints it.
 */
export const listSweeps = defineHttpFunction({
  name: 'listSweeps',
  route: 'sweeps',
  methods: ['GET'],
  auth: { roles: [ROLES.read] },
  async handle() {
    const { sweeps } = await runtime();
    const status = await sweeps.status();
    return {
      status: 200,
      jsonBody: { sweeps: status.map((s) => ({ ...s, schedule: sweepSchedule(s.sweep), setting: SWEEPS[s.sweep].setting })) },
    };
  },
});

/** `?dryRun=true|false`, its name in any case: a value that says neither is refused, never read as a run for real. */
function dryRunOf(query: URLSearchParams): boolean {
  const name = [...query.keys()].find((key) => key.toLowerCase() === 'dryrun');
  const value = name === undefined ? 'false' : (query.get(name) as string);
  if (!/^(true|false)$/i.test(value)) throw new InputError('dryRun', `expected true or false, got ${quote(value)}`);
  return value.toLowerCase() === 'true';
}
