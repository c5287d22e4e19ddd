#!/usr/bin/env node
/**
 * responder — the engine's command line, for SOC engineers writing and testing policy, and for analysts.
 *   responder plan <incident.json> [--policy <file>] [--json]                the decision on the payload alone, explained
 *   responder plan <incident.json> --url <engine> [--policy <file>] [--json] the engine's own decision, explained
 *   responder act <kind> <target> --reason <why> [...]                      ask the engine for one action
 *   responder actions list | show | approve | deny | rollback               the ledger, for analysts
 *   responder sweep <name> [--dry-run] [--json]      run a remediation sweep now, by name; --dry-run says what it
                                                   would do and changes nothing
 *   responder sweeps [--json]                        each sweep's schedule and last runs
  responder policy validate <file>                                         check a policy; every problem with its line
 *   responder doctor                                                         permission preflight
 *   responder deadletters [--limit <n>] [--json]                             what was dead-lettered, and failed actions
 *   responder replay <action key> --reason <why>                             send a failed or dead-lettered action again
 * plan and policy validate write nothing. Offline, plan decides here without the directory and Defender lookups the
 * engine makes before deciding, so its decision can differ from the engine's, and it says so; with --url (alias
 * --host) it asks a running engine (POST /api/plan) for the engine's own. act, actions, sweep, sweeps, deadletters and
 * replay call a running engine's routes as the analyst whose token they send (analystCommands.ts): --url, else the
 * local host when its token is in this directory; the token from RESPONDER_TOKEN, the local host, or the Azure sign-in
 * (engineToken.ts). None of them touches the ledger or the queue itself: the engine does, under the app role each
 * route requires.
 */
import { readFileSync } from 'node:fs';
import { readConfig } from '../shared/config';
import { ConfigError, InputError } from '../shared/errors';
import { parseJson } from '../shared/json';
import { loadPolicy } from '../shared/composition';
import { diagnose, type MissingPermission } from '../shared/doctor';
import { decide } from '../shared/policy/decide';
import { readPolicyFile } from '../shared/policy/load';
import { normalizeSentinelPayload } from '../shared/signals/sentinel';
import { explainDecision } from '../shared/policy/explain';
import { PLANNABLE_ACTIONS } from '../shared/actions/catalogue';
import { SWEEP_NAMES } from '../shared/sweeps/catalogue';
import { LOCAL_HOST_URL, runAnalystCommand, type AnalystOptions } from './analystCommands';
import type { AnalystCommand } from './engineRefusal';
import { callEngine, EngineRequestError, engineBaseUrl, engineLabel, printable, type EngineAnswer } from './engineClient';
import { engineToken, type TokenOptions } from './engineToken';
import { loadLocalSettings } from './localSettings';
import { LOCAL_TOKEN_FILE } from './localToken';

const USAGE = `usage:
  responder plan <incident.json> [--policy <file>] [--json]
                                                   decided here, on the payload alone: no directory or Defender lookups
  responder plan <incident.json> --url <engine> [--policy <file>] [--json]
                                                   the decision of the engine at <engine>, which enriches first
  responder act <kind> <target> --reason <why> [--incident <ARM id>] [--isolation Full|Selective] [--json]
                                                   ask the engine for one action, judged by its policy as a manual
                                                   request: ${PLANNABLE_ACTIONS.slice(0, 3).join(', ')},
                                                   ${PLANNABLE_ACTIONS.slice(3).join(', ')}
  responder actions list [--state <s>] [--kind <k>] [--target <id>] [--incident <ARM id>] [--since <ISO date-time>]
                         [--limit <n>] [--all] [--json]
                                                   the ledger, newest first, one line per action (--all: every page)
  responder actions show <key> [--json]            one action: its history, attempts, who decided, what it undoes
  responder actions approve <key> --reason <why> [--json]
  responder actions deny <key> --reason <why> [--json]
                                                   decide on a held action (four eyes: not one you requested)
  responder actions rollback <key> --reason <why> [--json]
                                                   undo a succeeded disableUser, isolateDevice or requirePimReapproval
  responder sweep <name> [--dry-run] [--json]      run a remediation sweep now (${SWEEP_NAMES.join(', ')});
                                                   --dry-run says what it would do and changes nothing
  responder sweeps [--json]                        each sweep's schedule, whether a run holds it, its last runs
  responder policy validate <file>
  responder doctor [--policy <file>] [--json]      permission preflight with the app settings in the environment
  responder deadletters [--limit <n>] [--json]     dead-lettered messages and failed actions, the newest of each
  responder replay <action key> --reason <why> [--json]
                                                   send a failed or dead-lettered action again, recorded as yours

The engine's commands take --url <base URL>, such as https://<app>.azurewebsites.net; --host is an alias. Without it,
all but plan call the local host at ${LOCAL_HOST_URL} when ${LOCAL_TOKEN_FILE} is here (npm start writes it).
The token: RESPONDER_TOKEN; else, for this machine, ${LOCAL_TOKEN_FILE}; else your Azure sign-in (az login) for
RESPONDER_AUDIENCE, from the environment or local.settings.json.
Exit codes: 0 done; 1 refused, failed or invalid input (or, for doctor, a permission the mode calls is missing); 2 the
command line is wrong.`;

type OptionName = 'json' | 'all' | 'dryRun' | 'policy' | 'reason' | 'url' | 'incident' | 'isolation' | 'state' | 'kind' | 'target' | 'since' | 'limit';

/** Every option as typed: the name it is read by, and what value it takes (none for a switch). */
const OPTIONS: Record<string, { name: OptionName; value?: string }> = {
  '--json': { name: 'json' },
  '--all': { name: 'all' },
  '--dry-run': { name: 'dryRun' },
  '--policy': { name: 'policy', value: 'a file' },
  '--reason': { name: 'reason', value: 'a text' },
  '--url': { name: 'url', value: "the engine's http(s) URL" },
  // plan's first name for --url, kept so that existing scripts run.
  '--host': { name: 'url', value: "the engine's http(s) URL" },
  '--incident': { name: 'incident', value: "the incident's ARM id" },
  '--isolation': { name: 'isolation', value: 'Full or Selective' },
  '--state': { name: 'state', value: 'a state' },
  '--kind': { name: 'kind', value: 'a kind of action' },
  '--target': { name: 'target', value: 'an identifier' },
  '--since': { name: 'since', value: 'an ISO 8601 date-time' },
  '--limit': { name: 'limit', value: 'a number' },
};

/** Each command: what it takes, and the options it reads (any other is a usage error). */
const COMMANDS: Record<string, { synopsis: string; args: number; options: readonly OptionName[] }> = {
  plan: { synopsis: 'plan <incident.json>', args: 1, options: ['policy', 'url', 'json'] },
  'policy validate': { synopsis: 'policy validate <file>', args: 1, options: [] },
  doctor: { synopsis: 'doctor', args: 0, options: ['policy', 'json'] },
  deadletters: { synopsis: 'deadletters', args: 0, options: ['limit', 'url', 'json'] },
  replay: { synopsis: 'replay <action key> --reason <why>', args: 1, options: ['reason', 'url', 'json'] },
  act: { synopsis: 'act <kind> <target> --reason <why>', args: 2, options: ['reason', 'incident', 'isolation', 'url', 'json'] },
  'actions list': { synopsis: 'actions list', args: 0, options: ['state', 'kind', 'target', 'incident', 'since', 'limit', 'all', 'url', 'json'] },
  'actions show': { synopsis: 'actions show <key>', args: 1, options: ['url', 'json'] },
  'actions approve': { synopsis: 'actions approve <key> --reason <why>', args: 1, options: ['reason', 'url', 'json'] },
  'actions deny': { synopsis: 'actions deny <key> --reason <why>', args: 1, options: ['reason', 'url', 'json'] },
  'actions rollback': { synopsis: 'actions rollback <key> --reason <why>', args: 1, options: ['reason', 'url', 'json'] },
  sweep: { synopsis: 'sweep <name>', args: 1, options: ['dryRun', 'url', 'json'] },
  sweeps: { synopsis: 'sweeps', args: 0, options: ['url', 'json'] },
};

/** Commands with sub-commands: the first argument names which. */
const GROUPS = ['policy', 'actions'];

export interface CommandLine {
  command: string;
  args: string[];
  options: Map<OptionName, string | true>;
  /** How each option was typed (--url or --host), for messages. */
  typed: Map<OptionName, string>;
}

/** The command, its arguments and options, checked against what the command takes; or the problem (a usage error). */
export function parseCommandLine(argv: readonly string[]): CommandLine | { problem: string } {
  const [word = '', ...rest] = argv;
  const options = new Map<OptionName, string | true>();
  const typed = new Map<OptionName, string>();
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const flag = equals === -1 ? arg : arg.slice(0, equals);
    const option = OPTIONS[flag];
    if (!option) return { problem: `unknown option ${flag}` };
    let value: string | true = true;
    if (option.value !== undefined) {
      const next = rest[i + 1];
      value = equals !== -1 ? arg.slice(equals + 1) : next !== undefined && !next.startsWith('--') ? (i++, next) : '';
      if (value.trim() === '') return { problem: `${flag} needs ${option.value}` };
    } else if (equals !== -1) return { problem: `${flag} takes no value` };
    options.set(option.name, value);
    typed.set(option.name, flag);
  }
  const grouped = GROUPS.includes(word);
  const command = grouped ? `${word} ${positional[0] ?? ''}`.trim() : word;
  const args = grouped ? positional.slice(1) : positional;
  const spec = COMMANDS[command];
  if (!spec) {
    const subcommands = Object.keys(COMMANDS).filter((name) => name.startsWith(`${word} `));
    return {
      problem: grouped
        ? `${word} takes ${subcommands.map((name) => name.slice(word.length + 1)).join(', ')}; got ${JSON.stringify(positional[0] ?? '')}`
        : `unknown command: ${word}`,
    };
  }
  if (args.length !== spec.args) return { problem: `expected: responder ${spec.synopsis}, got ${args.length} argument(s)` };
  for (const name of options.keys()) if (!spec.options.includes(name)) return { problem: `${command} does not take ${typed.get(name)}` };
  return { command, args, options, typed };
}

/** What tests replace: where the local host's token is looked for, the Azure sign-in, the clock. */
export interface RunContext {
  token?: TokenOptions;
  now?: () => Date;
}

/**
 * Exit codes: 0 done, 1 the input or policy is invalid, or the engine refused or could not be reached (or, for doctor,
 * a permission is missing), 2 the command line is wrong.
 */
export async function run(argv: string[], print: (text: string) => void, env: NodeJS.ProcessEnv = process.env, context: RunContext = {}): Promise<number> {
  const first = argv[0];
  if (first === 'help' || first === '--help' || first === undefined) {
    print(USAGE);
    return first === undefined ? 2 : 0;
  }
  const line = parseCommandLine(argv);
  if ('problem' in line) return usage(print, line.problem);
  const { command, args, options } = line;
  try {
    switch (command) {
      case 'plan':
        return await plan(args[0] as string, line, print, env, context);
      case 'policy validate':
        return validate(args[0] as string, print);
      case 'doctor':
        return await doctor(options, print, env);
      default: {
        const result = await runAnalystCommand({ command: command as AnalystCommand, args, options: analystOptions(line), print, env, ...context });
        return 'usage' in result ? usage(print, result.usage) : result.code;
      }
    }
  } catch (error) {
    if (error instanceof InputError || error instanceof ConfigError || error instanceof EngineRequestError) {
      print(`error: ${printable(error.message)}`);
      return 1;
    }
    throw error;
  }
}

function analystOptions({ options, typed }: CommandLine): AnalystOptions {
  const text = (name: OptionName) => {
    const value = options.get(name);
    return typeof value === 'string' ? value : undefined;
  };
  const read: AnalystOptions = { all: options.get('all') === true, json: options.get('json') === true, dryRun: options.get('dryRun') === true };
  for (const name of ['url', 'reason', 'incident', 'isolation', 'state', 'kind', 'target', 'since', 'limit'] as const) {
    const value = text(name);
    if (value !== undefined) read[name] = value;
  }
  const urlOption = typed.get('url');
  if (urlOption !== undefined) read.urlOption = urlOption;
  return read;
}

/** What an offline plan cannot know, said first: the engine's decision on the same incident can differ. */
export const PAYLOAD_ALONE_NOTE =
  "Decided on the payload alone, without the engine's directory and Defender lookups: user risk, privilege, groups, device risk and tags are unknown unless the payload has them. Ask the engine: --host <url>.";

async function plan(file: string, line: CommandLine, print: (text: string) => void, env: NodeJS.ProcessEnv, context: RunContext): Promise<number> {
  const policyFile = line.options.get('policy') as string | undefined;
  const url = line.options.get('url');
  const json = line.options.get('json') === true;
  if (typeof url === 'string') return planByEngine(file, { url, urlOption: line.typed.get('url') ?? '--url', policyFile, json }, print, env, context);
  const settings = readConfig(env);
  // The same precedence as the deployed engine (RESPONDER_POLICY, RESPONDER_POLICY_PATH, built-in), --policy first.
  const policy = loadPolicy(policyFile === undefined ? settings : { ...settings, policyText: undefined, policyPath: policyFile });
  const signal = normalizeSentinelPayload(parseJson(readText(file), file));
  const decision = decide(signal, policy, { modeOverride: settings.modeOverride });
  print(json ? JSON.stringify({ enriched: false, note: PAYLOAD_ALONE_NOTE, decision }, null, 2) : `${PAYLOAD_ALONE_NOTE}\n\n${explainDecision(decision)}`);
  return 0;
}

/**
 * The engine's own decision: POST /api/plan at `url` with the incident (and the draft policy, if given), printed with
 * where it came from. The engine enriches, and reads the ledger's caps and earlier actions, before it decides.
 */
async function planByEngine(
  file: string,
  options: { url: string; urlOption: string; policyFile: string | undefined; json: boolean },
  print: (text: string) => void,
  env: NodeJS.ProcessEnv,
  context: RunContext,
): Promise<number> {
  const target = engineBaseUrl(options.url, options.urlOption);
  if (!target.valid) return usage(print, target.problem);
  const incident = parseJson(readText(file), file);
  const body = options.policyFile === undefined ? incident : { incident, policy: readText(options.policyFile) };
  const { token } = await engineToken(target.url, env, context.token);
  const answer = await callEngine(target.url, { method: 'POST', path: '/api/plan', body, token, accept: options.json ? 'application/json' : 'text/plain' });
  const label = engineLabel(target.url);
  if (answer.status < 200 || answer.status > 299) {
    const redirect = answer.location ? ` (a redirect to ${answer.location}, not followed)` : '';
    print(`error: ${label}/api/plan answered ${answer.status}${answer.statusText ? ` ${answer.statusText}` : ''}${redirect}`);
    if (answer.body.trim()) print(printable(answer.body.trimEnd()));
    return 1;
  }
  const output = enginePlanOutput(answer, options.json, label);
  if (output === undefined) {
    print(
      `error: ${label} answered ${answer.status} with ${answer.contentType || 'no content type'}, not the engine's plan: is ${options.urlOption} the engine's base URL?`,
    );
    return 1;
  }
  print(printable(output));
  return 0;
}

/** The engine's answer as printed, headed by where it was decided; undefined when the answer is not a plan. */
function enginePlanOutput(answer: EngineAnswer, json: boolean, label: string): string | undefined {
  const note = `Decided by ${label}, enriched as the engine does: what it could not look up is in the notes.`;
  if (!json) return /^text\/plain\b/i.test(answer.contentType) ? `${note}\n\n${answer.body.trimEnd()}` : undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    return undefined;
  }
  // The answer's own fields (`decision`, and whatever the engine adds) are kept as they are.
  if (typeof parsed !== 'object' || parsed === null || !('decision' in parsed)) return undefined;
  return JSON.stringify({ decidedBy: label, note, ...parsed }, null, 2);
}

async function doctor(flags: ReadonlyMap<OptionName, string | true>, print: (text: string) => void, env: NodeJS.ProcessEnv): Promise<number> {
  const settings = readConfig(env);
  const policyFile = flags.get('policy');
  const policy = loadPolicy(typeof policyFile === 'string' ? { ...settings, policyText: undefined, policyPath: policyFile } : settings);
  const diagnosis = await diagnose(settings, policy);
  if (flags.get('json')) {
    print(JSON.stringify(diagnosis, null, 2));
    return diagnosis.ok ? 0 : 1;
  }
  for (const api of diagnosis.apis) {
    print(`${api.api.padEnd(9)} ${api.token === 'ok' ? `token ok, ${api.roles.length} app role(s)` : api.token}${api.problem ? `: ${api.problem}` : ''}`);
  }
  print(`mode      ${diagnosis.mode}${diagnosis.mode === 'audit' ? ': the engine calls read permissions only; ○ marks what it needs to enforce' : ''}`);
  const listed = (label: string, missing: MissingPermission[]) =>
    missing.map((m) => ` — ${label} ${m.api} ${m.permissions.join(' + ')} (to ${m.why})`).join('');
  for (const c of diagnosis.capabilities) {
    const mark = !c.ok ? '✗' : c.toEnforce.length > 0 ? '○' : '✓';
    print(`${mark} ${c.capability}${listed('missing', c.missing)}${listed('to enforce, needs', c.toEnforce)}`);
  }
  for (const note of diagnosis.notes) print(`note: ${note}`);
  return diagnosis.ok ? 0 : 1;
}

function validate(file: string, print: (text: string) => void): number {
  const { policy, digest } = readPolicyFile(file);
  const audit = policy.rules.filter((r) => r.mode === 'audit').length;
  print(`${file}: valid (digest ${digest})`);
  print(
    `  mode ${policy.mode}; ${policy.rules.length} rule(s)${audit ? `, ${audit} in audit mode` : ''}; ${policy.guardrails.approvals.length} approval guardrail(s); ${policy.guardrails.caps.length} cap(s)`,
  );
  const p = policy.protected;
  print(`  protected: ${p.users.length} user(s), ${p.groups.length} group(s), ${p.devices.length} device(s), ${p.deviceTags.length} tag(s)`);
  return 0;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new InputError(file, `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function usage(print: (text: string) => void, problem: string): number {
  print(`error: ${problem}\n${USAGE}`);
  return 2;
}

if (require.main === module) {
  loadLocalSettings();
  // Exit once done, with the command's code: a client a command opened (doctor's) must not keep the process alive.
  void run(process.argv.slice(2), (text) => console.log(text)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`error: ${(error as Error).message}`);
      process.exit(1);
    },
  );
}
