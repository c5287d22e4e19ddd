import { z } from 'zod';
import { ACTION_KINDS, ISOLATION_TYPES, PLANNABLE_ACTIONS } from '../actions/catalogue';
import type { AuthRequirement } from '../azure/httpFunction';
import type { HttpRegistration } from '../azure/registry';
import { DEFAULT_PAGE, MAX_PAGE } from '../analystRequests';
import { LEDGER_STATES } from '../ledger/ledger';
import { TEXT_LIMITS } from '../limits';
import { MAX_RISK_RECORDS } from '../signals/risk';
import { SWEEP_NAMES } from '../sweeps/catalogue';

/**
 * The API as an OpenAPI 3.1 document (GET /api/openapi.json), generated from zod schemas of each route's body and
 * answers (zod 4 emits JSON Schema). test/functions/openapi.test.ts holds it to the code: every registered route is
 * described, every example validates against its schema, and every request example is accepted by the real handler.
 */

/** An incident as the relay sends it, small: what the examples of /api/incidents and /api/plan carry. */
const INCIDENT_EXAMPLE = {
  object: {
    id: '/subscriptions/0b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21/resourceGroups/rg-siem/providers/Microsoft.OperationalInsights/workspaces/law-sentinel/providers/Microsoft.SecurityInsights/Incidents/73e01a99-5cd7-4139-a149-9f2736ff2ab5',
    properties: { title: 'Credential theft followed by malware on WKS-042', severity: 'High', status: 'New', relatedEntities: [] },
  },
};

const reason = z.string().min(1).max(TEXT_LIMITS.reason).describe('Why: recorded in the ledger and shown on the incident.');
const actionKey = z
  .string()
  .regex(/^[0-9a-f]{40}\.[A-Za-z]+\.[0-9a-fh-]+$/)
  .describe('The action key: <subject, 40 hex>.<kind>.<target>');

export const schemas = {
  error: z.object({
    error: z.object({
      code: z.string().describe('BadRequest, Unauthorized, Forbidden, Protected, FourEyes, NotFound, TargetNotFound, AlreadyActive, …'),
      message: z.string(),
      target: z.string().optional().describe('The offending field, for a 400.'),
      invocationId: z.string(),
    }),
    action: z.record(z.string(), z.unknown()).optional().describe('The action concerned, for a refusal about one.'),
  }),
  action: z
    .object({
      key: actionKey,
      kind: z.enum(ACTION_KINDS),
      state: z.enum(LEDGER_STATES),
      target: z.record(z.string(), z.unknown()),
      params: z.record(z.string(), z.unknown()),
      mode: z.enum(['audit', 'enforce']),
      reason: z.string(),
      source: z.record(z.string(), z.unknown()).describe('type, subject, incidentArmId, ruleId, requestedBy, rollbackOf'),
      stateReason: z.string().optional(),
      createdAt: z.string(),
      updatedAt: z.string(),
      history: z.array(z.record(z.string(), z.unknown())).describe('Every state it went through: when, by whom, why.'),
      attempts: z.array(z.record(z.string(), z.unknown())).describe("Every execution and the API's answer."),
      decidedBy: z.record(z.string(), z.unknown()).optional().describe("An analyst's approval or denial."),
      rolledBackBy: z.string().optional(),
      lease: z
        .object({ holder: z.string(), until: z.string() })
        .optional()
        .describe('While running: the delivery that holds it, and until when unless its worker renews it.'),
    })
    .loose(),
  deadLetter: z
    .object({
      messageId: z.string(),
      at: z.string(),
      by: z
        .enum(['worker', 'broker', 'risk-event-hub'])
        .describe('Who set it aside: the worker (unreadable, or not what the ledger holds: see reason), Service Bus, the risk-hub consumer.'),
      reason: z.string(),
      description: z.string(),
      deliveryCount: z.number().int().optional(),
      body: z.string().describe('The message as received, as JSON text, cut and marked.'),
      actionKey: actionKey.optional().describe('The key the message names, when it names one; the ledger may hold no such action (NoLedgerEntry).'),
      incidentArmId: z.string().optional(),
    })
    .loose(),
  decision: z
    .record(z.string(), z.unknown())
    .describe('The policy decision, explained: score, rules, planned and skipped actions, actions waiting for data, notes.'),
  incident: z
    .record(z.string(), z.unknown())
    .describe('A Sentinel incident: the automation-rule trigger body { object: { id, properties } }, a bare ARM incident, or a SecurityAlert record.'),
  /** The entity form: Sentinel's entity trigger body relayed as it came (test/fixtures/entityTrigger). */
  entityRequest: z.object({
    kind: z.enum(PLANNABLE_ACTIONS),
    entity: z
      .object({ Entity: z.record(z.string(), z.unknown()), IncidentArmID: z.string().nullable().optional() })
      .loose()
      .describe("The body Sentinel's entity trigger hands the playbook: { Entity: { properties: … }, IncidentArmID }."),
    reason: reason.optional(),
  }),
  actionRequest: z.object({
    kind: z.enum(PLANNABLE_ACTIONS),
    target: z.string().min(1).max(TEXT_LIMITS.upn).describe('User kinds: a UPN or an object id. Device kinds: an FQDN, a Defender id or an Entra device id.'),
    reason,
    incident: z.string().optional().describe('The ARM id of the incident the action is for: its comment goes there.'),
    params: z.object({ isolationType: z.enum(ISOLATION_TYPES).optional() }).optional(),
  }),
  decisionReason: z.object({ reason }),
} as const;

/** Each route's description: its operation, the body it takes, and the answers it gives. */
interface RouteDoc {
  summary: string;
  body?: { schema: z.ZodType; example: unknown };
  query?: Array<{ name: string; description: string }>;
  ok: { status: number; description: string; schema: z.ZodType };
  /** Statuses besides 401/403 (every guarded route) and 400 (every route with a body). */
  refusals?: Record<number, string>;
}

export const ROUTE_DOCS: Record<string, RouteDoc> = {
  incidents: {
    summary: 'Submit a Sentinel incident (the relay playbook): decide, record and queue its actions.',
    body: { schema: schemas.incident, example: INCIDENT_EXAMPLE },
    ok: {
      status: 202,
      description: 'Every planned action is recorded and queued.',
      schema: z.object({ decision: schemas.decision, recorded: z.array(z.record(z.string(), z.unknown())) }),
    },
    refusals: { 503: 'The queue did not take the actions: retry (the retry re-sends what was recorded).' },
  },
  riskEvents: {
    summary:
      'Submit Entra ID Protection risk logs as diagnostic settings stream them (RiskyUsers, UserRiskEvents): each record decided as an incident is (source: risk).',
    body: {
      schema: z.object({
        records: z
          .array(z.object({ category: z.string(), time: z.string().optional(), properties: z.record(z.string(), z.unknown()) }).loose())
          .max(MAX_RISK_RECORDS),
      }),
      example: {
        records: [
          {
            time: '11/28/2026 9:14:03 AM',
            category: 'RiskyUsers',
            operationName: 'Risky user',
            properties: {
              id: '6e7b768e-07e2-4810-8459-485f84f8f204',
              userPrincipalName: 'adele.vance@contoso.com',
              riskLevel: 'high',
              riskState: 'atRisk',
              riskDetail: 'none',
              riskLastUpdatedDateTime: '2026-11-28T9:14:03.512Z',
            },
          },
        ],
      },
    },
    ok: {
      status: 202,
      description: 'What became of each record: decided (with its decision and recorded actions), ignored (and why), or invalid (the field at fault).',
      schema: z.object({ records: z.array(z.object({ index: z.number(), status: z.enum(['decided', 'ignored', 'invalid']) }).loose()) }),
    },
    refusals: { 503: 'The queue did not take the actions: retry the body (what was decided is not decided twice).' },
  },
  runSweep: {
    summary: `Run a remediation sweep now (${SWEEP_NAMES.join(', ')}), or with ?dryRun=true say what it would do and change nothing.`,
    query: [{ name: 'dryRun', description: 'true: plan, record nothing, keep no place' }],
    ok: {
      status: 200,
      description: 'The run: completed, paused (its time ran out; the next run goes on) or busy (another run holds the sweep).',
      schema: z.object({ run: z.object({ sweep: z.string(), outcome: z.enum(['completed', 'paused', 'busy']), summary: z.string() }).loose() }),
    },
    refusals: {
      400: 'BadRequest: dryRun is neither true nor false.',
      404: 'NoSuchSweep',
      503: 'SweepFailed: an API it reads failed or, for a dry run, has nothing to spare; retry after Retry-After.',
    },
  },
  listSweeps: {
    summary: 'Each remediation sweep: its schedule, whether a run holds it now, whether the next run resumes, and its last runs.',
    ok: {
      status: 200,
      description: 'One entry per sweep; `last` lists the last run’s first findings, `recent` the last runs, newest first.',
      schema: z.object({
        sweeps: z.array(
          z
            .object({
              sweep: z.enum(SWEEP_NAMES as [string, ...string[]]),
              schedule: z.string(),
              setting: z.string(),
              resumes: z.boolean(),
              recent: z.array(z.object({}).loose()),
            })
            .loose(),
        ),
      }),
    },
  },
  plan: {
    summary: 'The decision for an incident, enriched as containment would be; writes nothing. Accept: text/plain for the explanation.',
    body: {
      schema: z.union([schemas.incident, z.object({ incident: schemas.incident, policy: z.string() })]),
      example: { incident: INCIDENT_EXAMPLE, policy: 'version: 1\nmode: audit\n' },
    },
    ok: { status: 200, description: 'The decision.', schema: z.object({ decision: schemas.decision }) },
  },
  health: {
    summary: 'Liveness for anyone; configuration, policy and (?deep=true) permissions for readers.',
    query: [{ name: 'deep', description: 'true: the permission preflight (readers only)' }],
    ok: { status: 200, description: 'ok (or degraded)', schema: z.object({ status: z.string() }).loose() },
    refusals: { 503: 'The engine cannot act (a missing setting, an invalid policy).' },
  },
  requestAction: {
    summary: 'An analyst asks for one action; judged by the same policy as automation (source: manual).',
    body: {
      schema: z.union([schemas.actionRequest, schemas.entityRequest]),
      example: { kind: 'revokeSessions', target: 'adele.vance@contoso.com', reason: 'the user reported a phishing link' },
    },
    ok: { status: 202, description: 'Queued, or held for approval.', schema: z.object({ action: schemas.action, decision: schemas.decision }) },
    refusals: {
      403: 'Protected: the target is protected (recorded blocked).',
      404: 'TargetNotFound',
      409: 'AlreadyActive: the same action is under way (with it).',
      429: 'CircuitOpen: a cap is reached (recorded blocked).',
    },
  },
  listActions: {
    summary: 'Actions in the ledger, newest first, a page at a time.',
    query: ['state', 'kind', 'target', 'incident', 'since', 'limit', 'after'].map((name) => ({ name, description: `filter or paging: ${name}` })),
    ok: {
      status: 200,
      description: 'A page, and the next link when there is more.',
      schema: z.object({ actions: z.array(schemas.action), next: z.string().optional() }),
    },
  },
  showAction: {
    summary: 'One action with its whole history, attempts and analysts’ decisions.',
    ok: { status: 200, description: 'The action.', schema: z.object({ action: schemas.action }) },
    refusals: { 404: 'NotFound' },
  },
  approveAction: {
    summary: 'Approve a held action: it is queued and runs once. Four eyes: not by its requester.',
    body: { schema: schemas.decisionReason, example: { reason: 'confirmed with the user' } },
    ok: { status: 202, description: 'Approved and queued.', schema: z.object({ action: schemas.action }) },
    refusals: { 404: 'NotFound', 409: 'NotPendingApproval or Expired (with the action).' },
  },
  denyAction: {
    summary: 'Deny a held action: it ends denied, and nothing is done.',
    body: { schema: schemas.decisionReason, example: { reason: 'false positive' } },
    ok: { status: 200, description: 'Denied.', schema: z.object({ action: schemas.action }) },
    refusals: { 404: 'NotFound', 409: 'NotPendingApproval or Expired (with the action).' },
  },
  rollbackAction: {
    summary: 'Undo a succeeded disableUser, isolateDevice or requirePimReapproval the engine carried out, as a new action.',
    body: { schema: schemas.decisionReason, example: { reason: 'false positive: the user confirmed the sign-in' } },
    ok: { status: 202, description: 'The rollback, queued or held for approval.', schema: z.object({ action: schemas.action, decision: schemas.decision }) },
    refusals: { 404: 'NotFound', 409: 'Irreversible, NothingToUndo, NotSucceeded, AlreadyRolledBack or AlreadyActive.' },
  },
  replayAction: {
    summary: 'Send a failed or dead-lettered action again: back to planned, a new message, fresh attempts, recorded as yours.',
    body: { schema: schemas.decisionReason, example: { reason: 'the Graph outage is over' } },
    ok: { status: 202, description: 'Queued again.', schema: z.object({ action: schemas.action }) },
    refusals: {
      404: 'NotFound',
      409: 'NotReplayable: it did not end failed or dead-lettered (with the action); HeldByAnother: a rollback another containment blocks.',
      429: 'CircuitOpen: a cap of its kind is reached (a replay takes its place in the caps); the action is left as it was.',
      503: 'QueueUnavailable: the queue did not take it; replay again (the same replay is sent).',
    },
  },
  listDeadLetters: {
    summary: 'What ended on the side: dead-letter records and failed or dead-lettered actions, newest first.',
    query: [{ name: 'limit', description: `at most this many of each, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE})` }],
    ok: {
      status: 200,
      description: 'The newest `limit` of each, their totals, and `truncated` when either list holds fewer than its total.',
      schema: z.object({
        deadLetters: z.array(schemas.deadLetter),
        failedActions: z.array(schemas.action),
        total: z.object({ deadLetters: z.number().int(), failedActions: z.number().int() }),
        truncated: z.boolean(),
      }),
    },
    refusals: { 400: `BadRequest: limit is not a whole number from 1 to ${MAX_PAGE}.` },
  },
  openapi: {
    summary: 'This document.',
    ok: { status: 200, description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) },
  },
};

/** The document for the routes registered in this process. */
export function openApiDocument(routes: readonly HttpRegistration[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const doc = ROUTE_DOCS[route.name];
    if (!doc) throw new Error(`no description of route ${route.name} in shared/api/openapi.ts`);
    const path = `/api/${route.route}`;
    for (const method of route.methods) {
      paths[path] ??= {};
      paths[path][method.toLowerCase()] = operation(route, doc, path);
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Sentinel Responder',
      version: '0.1.0',
      description: 'Every route takes an Entra access token carrying the app role shown, except where it says public.',
    },
    components: {
      securitySchemes: {
        entra: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: "An Entra access token for the engine's audience; its roles claim carries the app role.",
        },
      },
      schemas: { Error: z.toJSONSchema(schemas.error), Action: z.toJSONSchema(schemas.action) },
    },
    paths,
  };
}

function operation(route: HttpRegistration, doc: RouteDoc, path: string): Record<string, unknown> {
  const json = (schema: z.ZodType) => ({ 'application/json': { schema: z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) } });
  const error = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
  const responses: Record<string, unknown> = { [doc.ok.status]: { description: doc.ok.description, content: json(doc.ok.schema) } };
  if (doc.body) responses['400'] = error('BadRequest: the field is named in error.target.');
  if (isGuarded(route.auth)) {
    responses['401'] = error('Unauthorized: no token, or not a valid one.');
    responses['403'] = error(`Forbidden: the token lacks ${roleText(route.auth)}.`);
  }
  for (const [status, description] of Object.entries(doc.refusals ?? {})) responses[status] = error(description);
  return {
    operationId: route.name,
    summary: doc.summary,
    description: isGuarded(route.auth) ? `Role: ${roleText(route.auth)}.` : 'Public.',
    ...(isGuarded(route.auth) && { security: [{ entra: [] }] }),
    parameters: [
      ...[...path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
      ...(doc.query ?? []).map((q) => ({ name: q.name, in: 'query', required: false, description: q.description, schema: { type: 'string' } })),
    ],
    ...(doc.body && {
      requestBody: { required: true, content: { 'application/json': { ...json(doc.body.schema)['application/json'], example: doc.body.example } } },
    }),
    responses,
  };
}

function isGuarded(auth: AuthRequirement): auth is { roles: readonly string[] } & AuthRequirement {
  return 'roles' in auth;
}

function roleText(auth: AuthRequirement): string {
  return isGuarded(auth) ? `the app role ${auth.roles.join(' or ')}` : 'nothing';
}
