#!/usr/bin/env node
/**
 * responder — the engine's command line, for SOC engineers writing and testing policy.
 *   responder plan <incident.json> [--policy <file>] [--json]               the decision on the payload alone, explained
 *   responder plan <incident.json> --host <url> [--policy <file>] [--json]  the engine's own decision, explained
 *   responder policy validate <file>                                        check a policy; every problem with its line
 *   responder doctor                                                        permission preflight
 *   responder deadletters [--json]                                          what was dead-lettered, and actions that failed
 *   responder replay <action key> [--reason <why>]                          send a failed or dead-lettered action again
 * plan and policy validate write nothing. Offline, plan decides here without the directory and Defender lookups the
 * engine makes before deciding, so its decision can differ from the engine's, and it says so; with --host it asks a
 * running engine (POST /api/plan) for the engine's own. deadletters and replay use the app settings in the environment
 * (or local.settings.json) to reach the ledger and the queue, as the deployed engine does.
 */
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { azureCredential } from '../shared/clients/credential';
import { readConfig, type ResponderConfig } from '../shared/config';
import { ConfigError, InputError } from '../shared/errors';
import { parseJson } from '../shared/json';
import { loadPolicy } from '../shared/composition';
import { diagnose } from '../shared/doctor';
import { decide } from '../shared/policy/decide';
import { readPolicyFile } from '../shared/policy/load';
import { normalizeSentinelPayload } from '../shared/signals/sentinel';
import { explainDecision } from '../shared/policy/explain';
import { targetLabel } from '../shared/actions/target';
import { runtime } from '../shared/runtime';
import { loadLocalSettings } from './localSettings';
import { LOCAL_TOKEN_FILE } from './localToken';
import { bearerToken, EngineRequestError, engineBaseUrl, engineLabel, postPlan, printable, type EngineAnswer } from './engineClient';

const USAGE = `usage:
  responder plan <incident.json> [--policy <file>] [--json]
                                                   decided here, on the payload alone: no directory or Defender lookups
  responder plan <incident.json> --host <url> [--policy <file>] [--json]
                                                   the decision of the engine at <url>, which enriches first (npm start
                                                   serves http://localhost:7071); the token from RESPONDER_TOKEN, else
                                                   for this machine ${LOCAL_TOKEN_FILE}
  responder policy validate <file>
  responder doctor [--policy <file>] [--json]      permission preflight with the app settings in the environment
  responder deadletters [--json]                   dead-lettered messages and failed actions, from the ledger
  responder replay <action key> [--reason <why>]   send a failed or dead-lettered action again, recorded as yours`;

/**
 * Exit codes: 0 done, 1 the input or policy is invalid (or, for doctor, a permission is missing; for plan --host, the
 * engine refused or could not be reached), 2 the command line is wrong.
 */
export async function run(argv: string[], print: (text: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    if (arg === '--json') flags.set('json', true);
    else if (arg === '--policy') flags.set('policy', rest[++i] ?? '');
    else if (arg === '--reason') flags.set('reason', rest[++i] ?? '');
    else if (arg === '--host') flags.set('host', rest[++i] ?? '');
    else if (arg.startsWith('--')) return usage(print, `unknown option ${arg}`);
    else positional.push(arg);
  }
  try {
    if (command === 'plan' && positional.length === 1) return await plan(positional[0] as string, flags, print, env);
    if (command === 'policy' && positional[0] === 'validate' && positional.length === 2) return validate(positional[1] as string, print);
    if (command === 'doctor' && positional.length === 0) return await doctor(flags, print, env);
    if (command === 'deadletters' && positional.length === 0) return await deadLetters(flags, print);
    if (command === 'replay' && positional.length === 1) return await replay(positional[0] as string, flags, print, env);
    if (command === 'help' || command === '--help' || command === undefined) {
      print(USAGE);
      return command === undefined ? 2 : 0;
    }
    return usage(print, `unknown command: ${[command, ...positional].join(' ')}`);
  } catch (error) {
    if (error instanceof InputError || error instanceof ConfigError || error instanceof EngineRequestError) {
      print(`error: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

/** What an offline plan cannot know, said first: the engine's decision on the same incident can differ. */
export const PAYLOAD_ALONE_NOTE =
  "Decided on the payload alone, without the engine's directory and Defender lookups: user risk, privilege, groups, device risk and tags are unknown unless the payload has them. Ask the engine: --host <url>.";

async function plan(file: string, flags: Map<string, string | true>, print: (text: string) => void, env: NodeJS.ProcessEnv): Promise<number> {
  const policyFile = flags.get('policy');
  if (policyFile === '' || policyFile === true) return usage(print, '--policy needs a file');
  const host = flags.get('host');
  const json = flags.get('json') === true;
  if (host !== undefined) return planByEngine(file, { host: typeof host === 'string' ? host : '', policyFile, json }, print, env);
  const settings = readConfig(env);
  // The same precedence as the deployed engine (RESPONDER_POLICY, RESPONDER_POLICY_PATH, built-in), --policy first.
  const policy = loadPolicy(policyFile === undefined ? settings : { ...settings, policyText: undefined, policyPath: policyFile });
  const signal = normalizeSentinelPayload(parseJson(readText(file), file));
  const decision = decide(signal, policy, { modeOverride: settings.modeOverride });
  print(json ? JSON.stringify({ enriched: false, note: PAYLOAD_ALONE_NOTE, decision }, null, 2) : `${PAYLOAD_ALONE_NOTE}\n\n${explainDecision(decision)}`);
  return 0;
}

/**
 * The engine's own decision: POST /api/plan at `host` with the incident (and the draft policy, if given), printed with
 * where it came from. The engine enriches, and reads the ledger's caps and earlier actions, before it decides.
 */
async function planByEngine(
  file: string,
  options: { host: string; policyFile: string | undefined; json: boolean },
  print: (text: string) => void,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const target = engineBaseUrl(options.host);
  if (!target.valid) return usage(print, target.problem);
  const incident = parseJson(readText(file), file);
  const body = options.policyFile === undefined ? incident : { incident, policy: readText(options.policyFile) };
  const answer = await postPlan(target.url, body, { token: bearerToken(target.url, env), accept: options.json ? 'application/json' : 'text/plain' });
  const label = engineLabel(target.url);
  if (answer.status < 200 || answer.status > 299) {
    const redirect = answer.location ? ` (a redirect to ${answer.location}, not followed)` : '';
    print(`error: ${label}/api/plan answered ${answer.status}${answer.statusText ? ` ${answer.statusText}` : ''}${redirect}`);
    if (answer.body.trim()) print(printable(answer.body.trimEnd()));
    return 1;
  }
  const output = enginePlanOutput(answer, options.json, label);
  if (output === undefined) {
    print(`error: ${label} answered ${answer.status} with ${answer.contentType || 'no content type'}, not the engine's plan: is --host the engine's base URL?`);
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

async function doctor(flags: Map<string, string | true>, print: (text: string) => void, env: NodeJS.ProcessEnv): Promise<number> {
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
  for (const c of diagnosis.capabilities) {
    print(`${c.ok ? '✓' : '✗'} ${c.capability}${c.missing.map((m) => ` — missing ${m.api} ${m.permissions.join(' + ')} (to ${m.why})`).join('')}`);
  }
  for (const note of diagnosis.notes) print(`note: ${note}`);
  return diagnosis.ok ? 0 : 1;
}

async function deadLetters(flags: Map<string, string | true>, print: (text: string) => void): Promise<number> {
  const { ledger } = await runtime();
  const records = await ledger.listDeadLetters();
  const failed = [...(await ledger.list({ state: 'dead-lettered' })), ...(await ledger.list({ state: 'failed' }))];
  if (flags.get('json')) {
    print(JSON.stringify({ deadLetters: records, failedActions: failed }, null, 2));
    return 0;
  }
  print(`${records.length} dead-lettered message(s)`);
  for (const r of records)
    print(
      `  ${r.at}  ${r.by === 'worker' ? 'refused by the worker' : 'dead-lettered by Service Bus'}: ${r.reason} ${r.description}  message ${r.messageId}${r.actionKey ? `  action ${r.actionKey}` : ''}`,
    );
  print(`${failed.length} action(s) failed or dead-lettered (replay one with: responder replay <action key>)`);
  for (const e of failed) print(`  ${e.key}  ${e.kind} on ${targetLabel(e.target)}: ${e.state}: ${e.stateReason ?? ''}`);
  return 0;
}

async function replay(key: string, flags: Map<string, string | true>, print: (text: string) => void, env: NodeJS.ProcessEnv): Promise<number> {
  const reason = flags.get('reason');
  if (reason === '' || reason === true) return usage(print, '--reason needs a text');
  const { engine, config: settings } = await runtime();
  const entry = await engine.replay(key, await whoRunsThis(settings, env), reason);
  print(`${entry.key}  ${entry.kind} on ${targetLabel(entry.target)}: ${entry.state} (sent again)`);
  return 0;
}

/**
 * Who the ledger records as replaying an action: never a name the command line claims. With the identity settings
 * Azure uses, the Entra identity whose token reaches the ledger (its object id and name, from the token this process
 * obtained for itself); with a connection string there is none, and the machine's own user is recorded as such.
 */
async function whoRunsThis(settings: ResponderConfig, env: NodeJS.ProcessEnv): Promise<string> {
  if (settings.storage && 'tableServiceUri' in settings.storage) {
    const credential = await azureCredential(settings.authorityHost);
    const token = await credential.getToken(`${new URL(settings.storage.tableServiceUri).origin}/.default`);
    const claims = token ? (JSON.parse(Buffer.from(token.token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>) : {};
    const text = (name: string) => (typeof claims[name] === 'string' ? (claims[name] as string) : undefined);
    const oid = text('oid');
    if (oid) return `${text('upn') ?? text('preferred_username') ?? text('unique_name') ?? text('appid') ?? 'Entra identity'} (${oid}), with responder replay`;
  }
  const user = env.USER ?? env.USERNAME ?? userInfo().username;
  return `${user}@${hostname()} (this machine's user: no Entra identity signs the ledger's connection), with responder replay`;
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
  // Exit once done: the Service Bus and Table clients deadletters and replay open would keep the process alive.
  void run(process.argv.slice(2), (text) => console.log(text)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`error: ${(error as Error).message}`);
      process.exit(1);
    },
  );
}
