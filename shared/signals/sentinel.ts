import { InputError } from '../errors';
import { parseJson } from '../json';
import { EntityCursor, mergeEntities, parseEntity } from './entities';
import { Fields, isRecord, spelledAs } from './fields';
import { parseIncidentArmId } from './identifiers';
import type { Entity, IncidentRef, Severity, Signal } from './signal';
import { SEVERITIES } from './signal';

/** The note on an incident that arrived without entities; the engine replaces it once it has listed them. */
export const NO_ENTITIES_NOTE = 'the incident carries no relatedEntities (Sentinel may add them later; an update will bring them)';

/**
 * Normalizes what Sentinel sends into a Signal. Three shapes are accepted (reference/sentinel.md):
 * - the incident trigger body an automation rule's relay posts: `{ objectSchemaType: "Incident", object: {…} }`,
 * - a bare ARM incident (`{ id, name, properties }`), as returned by `incidents.get` or a Logic App step,
 * - the alert trigger body (a SecurityAlert record, PascalCase, `$id`/`$ref` entities), from playbooks run by hand.
 */
export function normalizeSentinelPayload(body: unknown): Signal {
  if (!isRecord(body)) throw new InputError('', 'expected a JSON object (a Sentinel incident or alert)');
  const top = Fields.of(body, '');
  if (top.get('SystemAlertId') !== undefined) return normalizeAlert(top);
  const object = top.object('object');
  if (object) {
    const schemaType = top.string('objectSchemaType');
    if (schemaType !== undefined && schemaType.toLowerCase() !== 'incident') {
      throw new InputError('objectSchemaType', `expected "Incident", got ${JSON.stringify(schemaType)}`);
    }
    return normalizeIncident(object, top.string('objectEventType'));
  }
  if (top.get('properties') !== undefined && top.get('id') !== undefined) return normalizeIncident(top, undefined);
  throw new InputError(
    '',
    'not a Sentinel incident or alert: expected an automation-rule trigger body ({ "object": { "id", "properties" } }), an ARM incident ({ "id", "properties" }) or a SecurityAlert ({ "SystemAlertId", … })',
  );
}

function normalizeIncident(incident: Fields, eventType: string | undefined): Signal {
  const armId = incident.requiredString('id');
  const parts = parseIncidentArmId(armId);
  if (!parts) {
    throw new InputError(
      incident.at('id'),
      'expected an incident ARM id: /subscriptions/{guid}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{workspace}/providers/Microsoft.SecurityInsights/Incidents/{id}',
    );
  }
  const props = Fields.of(incident.get('properties'), incident.at('properties'));
  const extra = props.object('additionalData');
  const notes: string[] = [];

  const tactics = extra?.strings('tactics') ?? [];
  const techniques = extra?.strings('techniques') ?? [];
  const products = extra?.strings('alertProductNames') ?? [];
  const alerts = props.array('alerts');
  for (let i = 0; i < alerts.length; i++) {
    const alert = Fields.of(alerts[i], props.at(`alerts[${i}]`));
    const alertProps = alert.object('properties') ?? alert;
    // A loop, not push(...list): a crafted alert with a huge list must not overflow the call's argument stack.
    for (const tactic of alertProps.strings('tactics')) tactics.push(tactic);
    for (const technique of alertProps.strings('techniques')) techniques.push(technique);
    const product = alertProps.string('productName');
    if (product) products.push(product);
  }

  const entityPath = props.at('relatedEntities');
  const rawEntities = props.array('relatedEntities');
  if (rawEntities.length === 0) notes.push(NO_ENTITIES_NOTE);
  const entities = mergeEntities(parseEntities(rawEntities, entityPath), notes);

  const ref: IncidentRef = {
    armId,
    name: parts.incidentName,
    subscriptionId: parts.subscriptionId,
    resourceGroup: parts.resourceGroup,
    workspaceName: parts.workspaceName,
  };
  const number = props.number('incidentNumber');
  if (number !== undefined) ref.number = number;
  const url = props.string('incidentUrl');
  if (url !== undefined) ref.url = url;
  if (eventType !== undefined) ref.eventType = eventType;

  const signal: Signal = {
    source: 'incident',
    subject: armId.toLowerCase(),
    title: props.string('title') ?? `Incident ${number ?? parts.incidentName}`,
    severity: severity(props, 'severity'),
    incident: ref,
    tactics: distinct(tactics),
    techniques: distinct(techniques),
    products: distinct(products),
    labels: labels(props),
    entities,
    notes,
  };
  const status = props.string('status');
  if (status !== undefined) signal.status = status;
  return signal;
}

function normalizeAlert(alert: Fields): Signal {
  const alertId = alert.requiredString('SystemAlertId');
  if (!/^[\w.:-]{1,128}$/.test(alertId)) throw new InputError(alert.at('SystemAlertId'), 'expected an alert id (letters, digits, "-", "_", ".", ":")');
  const notes: string[] = [];
  // In Log Analytics the SecurityAlert record holds Entities and Techniques as JSON text, and Tactics as "A, B".
  const entities = mergeEntities(parseEntities(embeddedArray(alert, 'Entities'), alert.at('Entities')), notes);
  if (entities.length === 0) notes.push('the alert carries no entities');
  const signal: Signal = {
    source: 'alert',
    subject: `alert:${alertId.toLowerCase()}`,
    title: alert.string('AlertDisplayName') ?? alert.string('AlertName') ?? `Alert ${alertId}`,
    severity: severity(alert, 'Severity'),
    tactics: splitList(alert, 'Tactics'),
    techniques: embeddedArray(alert, 'Techniques').filter((t): t is string => typeof t === 'string'),
    products: [alert.string('ProductName')].filter((p): p is string => p !== undefined),
    labels: [],
    entities,
    notes,
  };
  const status = alert.string('Status');
  if (status !== undefined) signal.status = status;
  return signal;
}

function parseEntities(raw: unknown[], path: string): Entity[] {
  const entities: Entity[] = [];
  const cursor = new EntityCursor(path);
  for (; cursor.index < raw.length; cursor.index++) {
    const entity = parseEntity(raw[cursor.index], cursor);
    if (entity) entities.push(entity);
  }
  return entities;
}

const severityNamed = spelledAs(SEVERITIES);

/** The names in first-seen order, each once. Most lists hold a handful of names and no repeats: no set for those. */
function distinct(names: string[]): string[] {
  if (names.length > 8) return [...new Set(names)];
  for (let i = 1; i < names.length; i++) if (names.lastIndexOf(names[i] as string, i - 1) !== -1) return [...new Set(names)];
  return names;
}

function severity(fields: Fields, name: string): Severity {
  const value = fields.requiredString(name);
  const match = severityNamed(value);
  if (!match) throw new InputError(fields.at(name), `expected one of ${SEVERITIES.join(', ')}, got ${JSON.stringify(value)}`);
  return match;
}

/** Labels as objects (`{ labelName, labelType }`, from ARM) or plain strings. */
function labels(props: Fields): string[] {
  const raw = props.array('labels');
  const out: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const item = raw[i];
    const name = typeof item === 'string' ? item.trim() : Fields.of(item, props.at(`labels[${i}]`)).string('labelName');
    if (name) out.push(name);
  }
  return out;
}

function splitList(fields: Fields, name: string): string[] {
  const value = fields.get(name);
  if (typeof value === 'string')
    return value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  return fields.strings(name);
}

function embeddedArray(fields: Fields, name: string): unknown[] {
  const value = fields.get(name);
  if (typeof value !== 'string') return fields.array(name);
  if (value.trim() === '') return [];
  const parsed = parseJson(value, fields.at(name));
  if (!Array.isArray(parsed)) throw new InputError(fields.at(name), 'expected a JSON array');
  return parsed;
}
