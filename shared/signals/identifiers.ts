import { isPrintable } from '../limits';

/**
 * Allow-list patterns for every identifier that can end up in a URL or a ledger key (reference/security.md:
 * "ids checked against allow-list patterns"). One place, so signals, manual requests and executors agree.
 */

/**
 * The patterns, as regular expressions would spell them (ASCII letters either case):
 *   GUID            [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}
 *   Defender id     [0-9a-f]{40}
 *   UPN             [^\s@/\\'"?%]+ @ label(.label)+   a label: [a-z0-9], or [a-z0-9][a-z0-9-]*[a-z0-9]
 *   DNS name        at most 253 characters; labels of [a-z0-9_][a-z0-9_-]{0,62}, separated by dots
 * Written as loops over character codes, as a large incident checks hundreds of ids on the engine's hot path;
 * test/signals/identifiers.test.ts holds each loop to its regular expression.
 */
const HEX = 1;
const LETTER_OR_DIGIT = 2;
const DNS_FIRST = 4; // a DNS label's first character: letter, digit or _
const DNS_REST = 8; // the rest of a DNS label: letter, digit, _ or -
/** What each ASCII code may be; codes above 127 are none of these. */
const CLASS = new Uint8Array(128);
/** Filled at import without compiling regular expressions: every entry point loads this module, and cold start counts. */
const mark = (chars: string, kinds: number): void => {
  for (const ch of chars) CLASS[ch.charCodeAt(0)] = (CLASS[ch.charCodeAt(0)] as number) | kinds;
};
const DIGITS = '0123456789';
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
mark(DIGITS + LETTERS + LETTERS.toUpperCase(), LETTER_OR_DIGIT | DNS_FIRST | DNS_REST);
mark(DIGITS + 'abcdefABCDEF', HEX);
mark('_', DNS_FIRST | DNS_REST);
mark('-', DNS_REST);
const is = (code: number, kind: number): boolean => code < 128 && ((CLASS[code] as number) & kind) !== 0;

export function isGuid(value: string): boolean {
  return value.length === 36 && isGuidAt(value, 0);
}

/**
 * Whether the 36 characters from `at` in `text` are a GUID: reads one where it sits (the end of an incident's ARM id)
 * rather than sliced out, as a sliced string reads each character through its parent.
 */
export function isGuidAt(text: string, at: number): boolean {
  return (
    at >= 0 &&
    text.length >= at + 36 &&
    text.charCodeAt(at + 8) === 0x2d &&
    text.charCodeAt(at + 13) === 0x2d &&
    text.charCodeAt(at + 18) === 0x2d &&
    text.charCodeAt(at + 23) === 0x2d &&
    isHexRun(text, at, at + 8) &&
    isHexRun(text, at + 9, at + 13) &&
    isHexRun(text, at + 14, at + 18) &&
    isHexRun(text, at + 19, at + 23) &&
    isHexRun(text, at + 24, at + 36)
  );
}

/** Defender for Endpoint machine ids are 40 hex characters. */
export function isMdeDeviceId(value: string): boolean {
  return value.length === 40 && isHexRun(value, 0, 40);
}

function isHexRun(value: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!is(value.charCodeAt(i), HEX)) return false;
  return true;
}

/**
 * Deliberately loose (UPNs are varied) but with no whitespace, slashes, quotes, control characters or invisible ones
 * (a bidirectional override would show a UPN as another) in the name.
 */
export function isUpn(value: string): boolean {
  if (value.length > 320 || !isPrintable(value)) return false;
  const at = value.indexOf('@');
  if (at < 1) return false;
  for (let i = 0; i < at; i++) if (!mayBeInUpnName(value.charCodeAt(i))) return false;
  // The domain: two labels at least; each starts and ends with a letter or digit, with hyphens only inside.
  let labels = 0;
  let start = at + 1;
  while (start <= value.length) {
    let end = value.indexOf('.', start);
    if (end === -1) end = value.length;
    if (end === start || !is(value.charCodeAt(start), LETTER_OR_DIGIT) || !is(value.charCodeAt(end - 1), LETTER_OR_DIGIT)) return false;
    for (let i = start + 1; i < end - 1; i++) {
      const code = value.charCodeAt(i);
      if (code !== 0x2d && !is(code, LETTER_OR_DIGIT)) return false;
    }
    labels++;
    start = end + 1;
  }
  return labels >= 2;
}

/**
 * Not `@ / \ ' " ? %` and not whitespace (what a regular expression's \s matches). `#` is allowed: guests' UPNs carry
 * `#EXT#` (every identifier is URL-encoded before it reaches a URL).
 */
function mayBeInUpnName(code: number): boolean {
  switch (code) {
    case 0x40: // @
    case 0x2f: // /
    case 0x5c: // \
    case 0x27: // '
    case 0x22: // "
    case 0x3f: // ?
    case 0x25: // %
      return false;
  }
  return !isWhitespace(code);
}

/** ECMAScript's WhiteSpace and LineTerminator: the characters of \s. */
function isWhitespace(code: number): boolean {
  if (code <= 0x20) return code === 0x20 || (code >= 0x09 && code <= 0x0d);
  if (code < 0xa0) return false;
  return (
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000 ||
    code === 0xfeff
  );
}

/** RFC 1123 host names: labels of letters, digits and hyphens (and _, which Windows names carry). */
export function isDnsName(value: string): boolean {
  if (value.length < 1 || value.length > 253) return false;
  let labelLength = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code === 0x2e) {
      if (labelLength === 0) return false;
      labelLength = 0;
    } else if (labelLength === 0 ? is(code, DNS_FIRST) : is(code, DNS_REST) && labelLength < 63) {
      labelLength++;
    } else {
      return false;
    }
  }
  return labelLength > 0;
}

/**
 * /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}/providers/Microsoft.SecurityInsights/Incidents/{id}
 * where sub is 36 of [0-9a-f-], rg 1-90 of [-\w._()], ws 1-63 of [-\w], id 1-64 of [-\w] (test/signals/identifiers.test.ts
 * holds the bounded expression as the definition). No part's characters include "/", so each part is the whole run
 * between two slashes: the expression matches runs of any length, and the lengths are checked after.
 */
const INCIDENT_ARM_ID =
  /^\/subscriptions\/([0-9a-f-]+)\/resourceGroups\/([-\w._()]+)\/providers\/Microsoft\.OperationalInsights\/workspaces\/([-\w]+)\/providers\/Microsoft\.SecurityInsights\/Incidents\/([-\w]+)$/i;

/** A Log Analytics workspace with Sentinel on it, by the parts of its ARM id. */
export interface WorkspaceRef {
  subscriptionId: string;
  resourceGroup: string;
  workspaceName: string;
}

/** Whether two references name the same workspace: ARM ids are case-insensitive. */
export function sameWorkspace(a: WorkspaceRef, b: WorkspaceRef): boolean {
  return (
    a.subscriptionId.toLowerCase() === b.subscriptionId.toLowerCase() &&
    a.resourceGroup.toLowerCase() === b.resourceGroup.toLowerCase() &&
    a.workspaceName.toLowerCase() === b.workspaceName.toLowerCase()
  );
}

export interface IncidentArmIdParts extends WorkspaceRef {
  incidentName: string;
}

export function parseIncidentArmId(armId: string): IncidentArmIdParts | undefined {
  const [, subscriptionId, resourceGroup, workspaceName, incidentName] = INCIDENT_ARM_ID.exec(armId) ?? [];
  if (subscriptionId === undefined || resourceGroup === undefined || workspaceName === undefined || incidentName === undefined) return undefined;
  if (subscriptionId.length !== 36 || resourceGroup.length > 90 || workspaceName.length > 63 || incidentName.length > 64) return undefined;
  return { subscriptionId, resourceGroup, workspaceName, incidentName };
}

/** A workspace's ARM id, parsed as an incident's is (the same parts, the same bounds), or undefined. */
export function parseWorkspaceArmId(armId: string): WorkspaceRef | undefined {
  const trimmed = armId.endsWith('/') ? armId.slice(0, -1) : armId;
  const parts = parseIncidentArmId(`${trimmed}/providers/Microsoft.SecurityInsights/Incidents/x`);
  return parts && { subscriptionId: parts.subscriptionId, resourceGroup: parts.resourceGroup, workspaceName: parts.workspaceName };
}

/** The short (first-label) form of a host name, lower-cased: `DC01.contoso.com` -> `dc01`. */
export function shortHostName(name: string): string {
  const dot = name.indexOf('.');
  return (dot === -1 ? name : name.slice(0, dot)).toLowerCase();
}

/** The ATT&CK technique a sub-technique belongs to: `T1078.004` -> `T1078`; a technique is its own. */
export function techniqueOf(id: string): string {
  const dot = id.indexOf('.');
  return dot === -1 ? id : id.slice(0, dot);
}
