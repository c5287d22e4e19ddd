/**
 * The analysts' commands: `act`, `actions list | show | approve | deny | rollback`, `sweep`, `sweeps`, `deadletters` and
 * `replay`, each one call (a list, one per page) to the engine's routes (functions/), printed for a human or, with
 * --json, as the engine answered. A refusal is printed with its cause and its fix (engineRefusal.ts).
 */
import { existsSync } from 'node:fs';
import { IDEMPOTENCY_KEY_PATTERN } from '../shared/actions/idempotency';
import type { LedgerEntry } from '../shared/ledger/ledger';
import { displayText } from '../shared/limits';
import { actionDetail, actionLines, actionOf, deadLetterAnswerOf, deadLetterLines, decisionOutcome, replayOutcome, requestOutcome } from './actionView';
import { answerJson, callEngine, EngineRequestError, engineBaseUrl, engineLabel, printable, type EngineAnswer, type EngineCall } from './engineClient';
import { explainRefusal, type AnalystCommand, type Refusal } from './engineRefusal';
import { engineToken, type EngineToken, type TokenOptions } from './engineToken';
import { LOCAL_TOKEN_FILE } from './localToken';

/** Where `npm start` serves the local host: the engine the commands call when no --url is given and its token is here. */
export const LOCAL_HOST_URL = 'http://localhost:7071';

/** `--all` follows at most this many pages: a list that never ends is the engine's bug, not the analyst's wait. */
const MAX_PAGES = 1000;

/** The options the analysts' commands read, by name; `url` also remembers how it was typed (--url or --host). */
export interface AnalystOptions {
  url?: string;
  urlOption?: string;
  reason?: string;
  incident?: string;
  isolation?: string;
  state?: string;
  kind?: string;
  target?: string;
  since?: string;
  limit?: string;
  all?: boolean;
  json?: boolean;
  dryRun?: boolean;
}

export interface AnalystRun {
  command: AnalystCommand;
  args: readonly string[];
  options: AnalystOptions;
  print: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Where the local host's token is looked for; and the Azure sign-in (tests replace both). */
  token?: TokenOptions;
  now?: () => Date;
}

/** What a command comes to: an exit code, or a usage problem (exit 2, with the usage). */
export type AnalystResult = { code: 0 | 1 } | { usage: string };

/** The engine a command talks to: --url (or --host), else the local host when its token is in this directory. */
export function chosenEngine(options: Pick<AnalystOptions, 'url' | 'urlOption'>, localTokenFile = LOCAL_TOKEN_FILE): { url: URL } | { usage: string } {
  if (options.url === undefined) {
    if (existsSync(localTokenFile)) return { url: new URL(LOCAL_HOST_URL) };
    return {
      usage: `no engine to ask: pass --url <the engine's base URL> (https://<app>.azurewebsites.net), or run this where npm start runs the local host (its ${localTokenFile} picks ${LOCAL_HOST_URL})`,
    };
  }
  const parsed = engineBaseUrl(options.url, options.urlOption);
  return parsed.valid ? { url: parsed.url } : { usage: parsed.problem };
}

export async function runAnalystCommand(run: AnalystRun): Promise<AnalystResult> {
  const { command, args, options } = run;
  const key = command === 'act' || command === 'actions list' || command === 'sweep' || command === 'sweeps' || command === 'deadletters' ? undefined : args[0];
  if (key !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    return { usage: `${JSON.stringify(key)} is not an action key: copy one from responder actions list (<40 hex>.<kind>.<target>)` };
  }
  const needsReason =
    command === 'act' || command === 'actions approve' || command === 'actions deny' || command === 'actions rollback' || command === 'replay';
  if (needsReason && !options.reason?.trim()) {
    return { usage: `${command} needs --reason "<why>": the ledger and the incident record it, and the next analyst reads it` };
  }
  const chosen = chosenEngine(options, run.token?.localTokenFile);
  if ('usage' in chosen) return chosen;
  const engine: Engine = {
    url: chosen.url,
    label: engineLabel(chosen.url),
    token: await engineToken(chosen.url, run.env, run.token),
    command,
    ...(key && { key }),
  };
  const out: Output = { print: run.print, json: options.json === true, now: run.now ?? (() => new Date()) };
  const reason = options.reason?.trim() ?? '';
  const at = `/api/actions/${encodeURIComponent(key ?? '')}`;
  switch (command) {
    case 'act':
      return oneAction(engine, out, { method: 'POST', path: '/api/actions', body: actBody(args, options) }, (a) => requestOutcome('requested', a, out.now()));
    case 'actions rollback':
      return oneAction(engine, out, { method: 'POST', path: `${at}/rollback`, body: { reason } }, (a) => requestOutcome('rollback requested', a, out.now()));
    case 'actions approve':
      return oneAction(engine, out, { method: 'POST', path: `${at}/approve`, body: { reason } }, (a) => decisionOutcome('approved', a, out.now()));
    case 'actions deny':
      return oneAction(engine, out, { method: 'POST', path: `${at}/deny`, body: { reason } }, (a) => decisionOutcome('denied', a, out.now()));
    case 'replay':
      return oneAction(engine, out, { method: 'POST', path: `${at}/replay`, body: { reason } }, replayOutcome);
    case 'actions show':
      return oneAction(engine, out, { method: 'GET', path: at }, (a) => actionDetail(a, out.now()));
    case 'actions list':
      return list(engine, out, options);
    case 'sweep':
      return sweep(engine, out, args[0] as string, options.dryRun === true);
    case 'sweeps':
      return sweeps(engine, out);
    case 'deadletters':
      return deadLetters(engine, out, options.limit);
  }
}

/** GET /api/deadletters: the dead-letter records, then the failed or dead-lettered actions, newest first. */
async function deadLetters(engine: Engine, out: Output, limit: string | undefined): Promise<AnalystResult> {
  const path = `/api/deadletters${limit === undefined ? '' : `?${new URLSearchParams({ limit })}`}`;
  const answer = await exchange(engine, out, { method: 'GET', path });
  if (answer === undefined) return { code: 1 };
  const found = deadLetterAnswerOf(answer);
  if (!found) return notTheEngine(engine, out, path, 'dead letters');
  out.print(printable(out.json ? JSON.stringify(answer, null, 2) : displayLines(deadLetterLines(found))));
  return { code: 0 };
}

/** POST /api/sweeps/{name}: the run's summary, then a line per finding (a dry run: what it would do). */
async function sweep(engine: Engine, out: Output, name: string, dryRun: boolean): Promise<AnalystResult> {
  const path = `/api/sweeps/${encodeURIComponent(name)}${dryRun ? '?dryRun=true' : ''}`;
  const answer = await exchange(engine, out, { method: 'POST', path });
  if (answer === undefined) return { code: 1 };
  const run = (answer as { run?: { summary?: unknown; findings?: unknown; outcome?: unknown } }).run;
  if (typeof run?.summary !== 'string' || !Array.isArray(run.findings)) return notTheEngine(engine, out, path, 'a sweep run');
  const findings = (run.findings as Array<{ subject?: unknown; summary?: unknown }>).map((f) => `  ${String(f.subject)}: ${String(f.summary)}`);
  out.print(printable(out.json ? JSON.stringify(answer, null, 2) : displayLines([run.summary, ...findings])));
  // Another run holds the sweep: nothing was done, which a script must be able to tell.
  return { code: run.outcome === 'busy' ? 1 : 0 };
}

/** GET /api/sweeps: a line per sweep (its schedule, whether a run holds it), then its last run's summary. */
async function sweeps(engine: Engine, out: Output): Promise<AnalystResult> {
  const path = '/api/sweeps';
  const answer = await exchange(engine, out, { method: 'GET', path });
  if (answer === undefined) return { code: 1 };
  const listed = (answer as { sweeps?: unknown }).sweeps;
  if (!Array.isArray(listed)) return notTheEngine(engine, out, path, 'the sweeps');
  const lines = (listed as Array<{ sweep?: unknown; schedule?: unknown; heldUntil?: unknown; last?: { summary?: unknown } }>).flatMap((s) => [
    `${String(s.sweep)} (${String(s.schedule)})${typeof s.heldUntil === 'string' ? `: a run holds it until ${s.heldUntil}` : ''}`,
    `  ${typeof s.last?.summary === 'string' ? s.last.summary : 'never run'}`,
  ]);
  out.print(printable(out.json ? JSON.stringify(answer, null, 2) : displayLines(lines)));
  return { code: 0 };
}

/** Lines from the engine, each kept to one line. */
function displayLines(lines: string[]): string {
  return lines.map((line) => displayText(line, 2000)).join('\n');
}

interface Engine {
  url: URL;
  label: string;
  token: EngineToken;
  command: AnalystCommand;
  key?: string;
}

interface Output {
  print: (text: string) => void;
  json: boolean;
  now: () => Date;
}

/** POST /api/actions's body: `{ kind, target, reason, incident?, params? }`; the engine checks every field. */
function actBody(args: readonly string[], options: AnalystOptions): Record<string, unknown> {
  return {
    kind: args[0],
    target: args[1],
    reason: options.reason?.trim(),
    ...(options.incident !== undefined && { incident: options.incident }),
    ...(options.isolation !== undefined && { params: { isolationType: options.isolation } }),
  };
}

/** A call whose answer carries one action: printed for a human by `human`, or with --json as the engine answered. */
async function oneAction(engine: Engine, out: Output, call: Omit<EngineCall, 'token'>, human: (action: LedgerEntry) => string[]): Promise<AnalystResult> {
  const answer = await exchange(engine, out, call);
  if (answer === undefined) return { code: 1 };
  const action = actionOf((answer as { action?: unknown }).action);
  if (!action) return notTheEngine(engine, out, call.path, 'an action');
  out.print(printable(out.json ? JSON.stringify(answer, null, 2) : human(action).join('\n')));
  return { code: 0 };
}

/** GET /api/actions with the filters given; --all follows `next` to the last page. */
async function list(engine: Engine, out: Output, options: AnalystOptions): Promise<AnalystResult> {
  const query = new URLSearchParams();
  for (const name of ['state', 'kind', 'target', 'incident', 'since', 'limit'] as const) {
    const value = options[name];
    if (value !== undefined) query.set(name, value);
  }
  const actions: unknown[] = [];
  const seen = new Set<string>();
  let next: string | undefined;
  for (let page = 0; ; page++) {
    const path = `/api/actions${query.size ? `?${query}` : ''}`;
    const answer = await exchange(engine, out, { method: 'GET', path });
    if (answer === undefined) return { code: 1 };
    const found = answer as { actions?: unknown; next?: unknown };
    if (!Array.isArray(found.actions)) return notTheEngine(engine, out, path, 'a list of actions');
    actions.push(...found.actions);
    // Only the cursor is taken from the link: the token goes nowhere but --url.
    const after = typeof found.next === 'string' ? new URL(found.next, 'http://engine.invalid').searchParams.get('after') : null;
    next = typeof found.next === 'string' ? found.next : undefined;
    if (!options.all || after === null) break;
    if (seen.has(after) || page + 1 >= MAX_PAGES) throw new EngineRequestError(`${engine.label} kept answering more pages (${page + 1}): stopped`);
    seen.add(after);
    query.set('after', after);
  }
  const entries = actions.map(actionOf);
  if (entries.some((entry) => entry === undefined)) return notTheEngine(engine, out, '/api/actions', 'actions');
  if (out.json) {
    out.print(printable(JSON.stringify({ actions, ...(next !== undefined && !options.all && { next }) }, null, 2)));
    return { code: 0 };
  }
  const lines = actionLines(entries as LedgerEntry[], out.now());
  if (lines.length === 0) lines.push('no actions');
  if (next !== undefined && !options.all) lines.push(`more: --all lists every page; --state, --kind, --target, --incident and --since narrow it`);
  out.print(printable(lines.join('\n')));
  return { code: 0 };
}

/** One call: its JSON answer when it succeeded; else undefined, the refusal printed with its cause and fix. */
async function exchange(engine: Engine, out: Output, call: Omit<EngineCall, 'token'>): Promise<unknown> {
  const answer = await callEngine(engine.url, { ...call, token: engine.token.token });
  const json = answerJson(answer);
  if (answer.status >= 200 && answer.status <= 299) {
    if (typeof json === 'object' && json !== null) return json;
    notTheEngine(engine, out, call.path, 'a JSON object', answer);
    return undefined;
  }
  printRefusal(engine, out, answer, json, call.path);
  return undefined;
}

/** The refusal, as the cause (with the engine's own words), the fix, and the action it is about. */
function printRefusal(engine: Engine, out: Output, answer: EngineAnswer, json: unknown, path: string): void {
  const body = (typeof json === 'object' && json !== null ? json : {}) as { error?: Record<string, unknown>; action?: unknown };
  const error = typeof body.error === 'object' && body.error !== null ? body.error : {};
  const text = (name: string) => (typeof error[name] === 'string' ? (error[name] as string) : undefined);
  const action = actionOf(body.action);
  const refusal: Refusal = {
    status: answer.status,
    ...(text('code') !== undefined && { code: text('code') }),
    ...(text('message') !== undefined && { message: text('message') }),
    ...(text('target') !== undefined && { target: text('target') }),
    ...(text('invocationId') !== undefined && { invocationId: text('invocationId') }),
    ...(action && { action }),
  };
  const context = {
    command: engine.command,
    engine: engine.label,
    tokenSource: engine.token.source,
    ...(engine.token.scope && { scope: engine.token.scope }),
    ...(engine.key && { key: engine.key }),
  };
  const redirect = answer.location !== undefined && answer.status >= 300 && answer.status <= 399;
  const { cause, fix } = redirect
    ? {
        cause: `${engine.label}${path} answered ${answer.status}, a redirect to ${answer.location}, not followed`,
        fix: "check --url: it must be the engine's own address (App Service Authentication must answer 401 to API calls, not redirect them to a sign-in page)",
      }
    : explainRefusal(refusal, context);
  if (out.json) {
    out.print(
      printable(JSON.stringify({ status: answer.status, error: { ...error, cause, fix }, ...(body.action !== undefined && { action: body.action }) }, null, 2)),
    );
    return;
  }
  const said = refusal.message ?? (json === undefined ? `${answer.statusText || 'no status text'}, ${answer.contentType || 'no content type'}` : undefined);
  const status = redirect ? '' : ` (${[answer.status, refusal.code].filter(Boolean).join(' ')}${said ? `: ${said}` : ''})`;
  // The engine's words, and the keys and states the fix quotes from its answer, each kept to one line.
  const lines = [`error: ${displayText(`${cause}${status}`, 2000)}`, `fix: ${displayText(fix, 2000)}`];
  if (action) lines.push(`action: ${actionLines([action], out.now())[0]}`);
  out.print(printable(lines.join('\n')));
}

/** The answer succeeded but is not what the engine sends: most likely --url names something else. */
function notTheEngine(engine: Engine, out: Output, path: string, expected: string, answer?: EngineAnswer): { code: 1 } {
  const got = answer ? ` (${answer.status}, ${answer.contentType || 'no content type'})` : '';
  out.print(`error: ${engine.label}${path} answered without ${expected}${got}: is --url the engine's base URL?`);
  return { code: 1 };
}
