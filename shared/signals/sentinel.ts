import { InputError, quote } from '../errors';
import { parseJson } from '../json';
import { TEXT_LIMITS } from '../limits';
import { mergeEntities, parseEntities } from './entities';
import {
  arrayOf,
  boundedText,
  describe,
  FieldLocation,
  FieldNames,
  Fields,
  isRecord,
  ItemLocation,
  noteCuts,
  numberOf,
  PathLocation,
  recordOf,
  requiredTextOf,
  spelledAs,
  stringsOf,
  textOf,
  type Location,
} from './fields';
import { parseIncidentArmId } from './identifiers';
import type { IncidentRef, Severity, Signal } from './signal';
import { SEVERITIES } from './signal';

/** The note on an incident that arrived without entities; the engine replaces it once it has listed them. */
export const NO_ENTITIES_NOTE = 'the incident carries no relatedEntities (Sentinel may add them later; an update will bring them)';

/** What a payload is told apart by: an alert's `SystemAlertId`, a trigger body's `object`, an ARM incident's `id`. */
const PAYLOAD = new FieldNames(['SystemAlertId', 'object', 'objectSchemaType', 'objectEventType', 'id', 'properties']);
/** The fields read from each object of an incident (Microsoft.SecurityInsights/incidents). */
const INCIDENT = new FieldNames(['id', 'properties']);
const PROPERTIES = new FieldNames(['title', 'severity', 'status', 'incidentNumber', 'incidentUrl', 'labels', 'alerts', 'relatedEntities', 'additionalData']);
const ADDITIONAL_DATA = new FieldNames(['tactics', 'techniques', 'alertProductNames']);
/** An incident's alert: ARM nests its fields under `properties`; other sources put them inline. */
const ALERT = new FieldNames(['properties', 'tactics', 'techniques', 'productName']);
const ALERT_PROPERTIES = new FieldNames(['tactics', 'techniques', 'productName']);
const LABEL = new FieldNames(['labelName']);

/** Where an incident's objects sit in the two incident shapes, for errors. */
interface IncidentAt {
  incident: PathLocation;
  properties: PathLocation;
  additionalData: PathLocation;
}
const incidentAt = (path: string): IncidentAt => {
  const incident = new PathLocation(path);
  const properties = new PathLocation(incident.at('properties'));
  return { incident, properties, additionalData: new PathLocation(properties.at('additionalData')) };
};
const IN_TRIGGER_BODY = incidentAt('object');
const BARE = incidentAt('');
const PAYLOAD_AT = new PathLocation('');

/**
 * Normalizes what Sentinel sends into a Signal. Three shapes are accepted (reference/sentinel.md):
 * - the incident trigger body an automation rule's relay posts: `{ objectSchemaType: "Incident", object: {…} }`,
 * - a bare ARM incident (`{ id, name, properties }`), as returned by `incidents.get` or a Logic App step,
 * - the alert trigger body (a SecurityAlert record, PascalCase, `$id`/`$ref` entities), from playbooks run by hand.
 */
export function normalizeSentinelPayload(body: unknown): Signal {
  if (!isRecord(body)) throw new InputError('', 'expected a JSON object (a Sentinel incident or alert)');
  const payload = PAYLOAD.read(body);
  if (payload.SystemAlertId !== undefined) return normalizeAlert(Fields.of(body, ''));
  const object = recordOf(payload.object, PAYLOAD_AT, 'object');
  if (object) {
    const schemaType = textOf(payload.objectSchemaType, PAYLOAD_AT, 'objectSchemaType');
    if (schemaType !== undefined && schemaType.toLowerCase() !== 'incident') {
      throw new InputError('objectSchemaType', `expected "Incident", got ${quote(schemaType)}`);
    }
    const incident = INCIDENT.read(object);
    return normalizeIncident(incident.id, incident.properties, IN_TRIGGER_BODY, textOf(payload.objectEventType, PAYLOAD_AT, 'objectEventType'));
  }
  if (payload.properties !== undefined && payload.id !== undefined) return normalizeIncident(payload.id, payload.properties, BARE, undefined);
  throw new InputError(
    '',
    'not a Sentinel incident or alert: expected an automation-rule trigger body ({ "object": { "id", "properties" } }), an ARM incident ({ "id", "properties" }) or a SecurityAlert ({ "SystemAlertId", … })',
  );
}

function normalizeIncident(id: unknown, properties: unknown, at: IncidentAt, eventType: string | undefined): Signal {
  const armId = requiredTextOf(id, at.incident, 'id');
  const parts = parseIncidentArmId(armId);
  if (!parts) {
    throw new InputError(
      at.incident.at('id'),
      'expected an incident ARM id: /subscriptions/{guid}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{workspace}/providers/Microsoft.SecurityInsights/Incidents/{id}',
    );
  }
  if (!isRecord(properties)) throw new InputError(at.incident.at('properties'), `expected an object, got ${describe(properties)}`);
  const fields = PROPERTIES.read(properties);
  const props = at.properties;
  const extraRecord = recordOf(fields.additionalData, props, 'additionalData');
  const extra = extraRecord && ADDITIONAL_DATA.read(extraRecord);
  const notes: string[] = [];
  const cuts: string[] = [];

  const tactics = names(stringsOf(extra?.tactics, at.additionalData, 'tactics'), at.additionalData, 'tactics', cuts);
  const techniques = names(stringsOf(extra?.techniques, at.additionalData, 'techniques'), at.additionalData, 'techniques', cuts);
  const products = names(stringsOf(extra?.alertProductNames, at.additionalData, 'alertProductNames'), at.additionalData, 'alertProductNames', cuts);
  const alerts = arrayOf(fields.alerts, props, 'alerts');
  for (let i = 0; i < alerts.length; i++) {
    const where = new ItemLocation(props, 'alerts', i);
    const alert = alerts[i];
    if (!isRecord(alert)) throw new InputError(where.path, `expected an object, got ${describe(alert)}`);
    const inline = ALERT.read(alert);
    const nested = recordOf(inline.properties, where, 'properties');
    const alertFields = nested ? ALERT_PROPERTIES.read(nested) : inline;
    const alertAt = nested ? new FieldLocation(where, 'properties') : where;
    // A loop, not push(...list): a crafted alert with a huge list must not overflow the call's argument stack.
    for (const tactic of names(stringsOf(alertFields.tactics, alertAt, 'tactics'), alertAt, 'tactics', cuts)) tactics.push(tactic);
    for (const technique of names(stringsOf(alertFields.techniques, alertAt, 'techniques'), alertAt, 'techniques', cuts)) techniques.push(technique);
    const product = boundedText(textOf(alertFields.productName, alertAt, 'productName'), alertAt, 'productName', TEXT_LIMITS.name, cuts);
    if (product) products.push(product);
  }

  const rawEntities = arrayOf(fields.relatedEntities, props, 'relatedEntities');
  if (rawEntities.length === 0) notes.push(NO_ENTITIES_NOTE);
  const entities = mergeEntities(parseEntities(rawEntities, props, 'relatedEntities', cuts, notes), notes);

  const ref: IncidentRef = {
    armId,
    name: parts.incidentName,
    subscriptionId: parts.subscriptionId,
    resourceGroup: parts.resourceGroup,
    workspaceName: parts.workspaceName,
  };
  const number = numberOf(fields.incidentNumber, props, 'incidentNumber');
  if (number !== undefined) ref.number = number;
  const url = boundedText(textOf(fields.incidentUrl, props, 'incidentUrl'), props, 'incidentUrl', TEXT_LIMITS.resource, cuts);
  if (url !== undefined) ref.url = url;
  if (eventType !== undefined) ref.eventType = boundedText(eventType, PAYLOAD_AT, 'objectEventType', TEXT_LIMITS.name, cuts);

  const signal: Signal = {
    source: 'incident',
    subject: armId.toLowerCase(),
    title: boundedText(textOf(fields.title, props, 'title'), props, 'title', TEXT_LIMITS.title, cuts) ?? `Incident ${number ?? parts.incidentName}`,
    severity: severityOf(fields.severity, props, 'severity'),
    incident: ref,
    tactics: distinct(tactics),
    techniques: distinct(techniques),
    products: distinct(products),
    labels: labels(fields.labels, props, cuts),
    entities,
    notes,
  };
  const statusText = boundedText(textOf(fields.status, props, 'status'), props, 'status', TEXT_LIMITS.name, cuts);
  if (statusText !== undefined) signal.status = statusText;
  noteCuts(cuts, notes);
  return signal;
}

function normalizeAlert(alert: Fields): Signal {
  const alertId = alert.requiredString('SystemAlertId');
  if (!/^[\w.:-]{1,128}$/.test(alertId)) throw new InputError(alert.at('SystemAlertId'), 'expected an alert id (letters, digits, "-", "_", ".", ":")');
  const notes: string[] = [];
  const cuts: string[] = [];
  // In Log Analytics the SecurityAlert record holds Entities and Techniques as JSON text, and Tactics as "A, B".
  const entities = mergeEntities(parseEntities(embeddedArray(alert, 'Entities'), alert, 'Entities', cuts, notes), notes);
  if (entities.length === 0) notes.push('the alert carries no entities');
  const title = alert.string('AlertDisplayName') === undefined ? 'AlertName' : 'AlertDisplayName';
  const signal: Signal = {
    source: 'alert',
    subject: `alert:${alertId.toLowerCase()}`,
    title: boundedText(alert.string(title), alert, title, TEXT_LIMITS.title, cuts) ?? `Alert ${alertId}`,
    severity: severityOf(alert.get('Severity'), alert, 'Severity'),
    tactics: names(splitList(alert, 'Tactics'), alert, 'Tactics', cuts),
    techniques: names(
      embeddedArray(alert, 'Techniques').filter((t): t is string => typeof t === 'string'),
      alert,
      'Techniques',
      cuts,
    ),
    products: [boundedText(alert.string('ProductName'), alert, 'ProductName', TEXT_LIMITS.name, cuts)].filter((p): p is string => p !== undefined),
    labels: [],
    entities,
    notes,
  };
  const status = boundedText(alert.string('Status'), alert, 'Status', TEXT_LIMITS.name, cuts);
  if (status !== undefined) signal.status = status;
  noteCuts(cuts, notes);
  return signal;
}

/** A list of names (tactics, techniques, products, labels), each bounded as `bounded` does. */
function names(list: string[], where: Location, name: string, cuts: string[]): string[] {
  return list.map((text, i) => boundedText(text, where, `${name}[${i}]`, TEXT_LIMITS.name, cuts));
}

const severityNamed = spelledAs(SEVERITIES);

/** The names in first-seen order, each once. Most lists hold a handful of names and no repeats: no set for those. */
function distinct(names: string[]): string[] {
  if (names.length > 8) return [...new Set(names)];
  return names.some((name, i) => i > 0 && names.lastIndexOf(name, i - 1) !== -1) ? [...new Set(names)] : names;
}

function severityOf(value: unknown, where: Location, name: string): Severity {
  const text = requiredTextOf(value, where, name);
  const match = severityNamed(text);
  if (!match) throw new InputError(where.at(name), `expected one of ${SEVERITIES.join(', ')}, got ${quote(text)}`);
  return match;
}

/** Labels as objects (`{ labelName, labelType }`, from ARM) or plain strings. */
function labels(value: unknown, props: Location, cuts: string[]): string[] {
  const list = arrayOf(value, props, 'labels');
  const out: string[] = [];
  for (let i = 0; i < list.length; i++) {
    const item = list[i];
    let name: string | undefined;
    if (typeof item === 'string') name = item.trim();
    else if (isRecord(item)) name = textOf(LABEL.read(item).labelName, new ItemLocation(props, 'labels', i), 'labelName');
    else throw new InputError(new ItemLocation(props, 'labels', i).path, `expected an object, got ${describe(item)}`);
    if (name) out.push(boundedText(name, new ItemLocation(props, 'labels', i), 'labelName', TEXT_LIMITS.name, cuts));
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

/** The incident an ARM id names, without its properties; undefined when it is not an incident ARM id. */
export function incidentRefOf(armId: string): IncidentRef | undefined {
  const parts = parseIncidentArmId(armId);
  if (!parts) return undefined;
  return { armId, name: parts.incidentName, subscriptionId: parts.subscriptionId, resourceGroup: parts.resourceGroup, workspaceName: parts.workspaceName };
}
