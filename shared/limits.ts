/**
 * How long text from outside may be, in one place. Every string a payload, an API answer or a queue message brings is
 * bounded where it enters, to limits that fit everything that carries it on: the queue's command schema, a Table
 * storage string property (32,768 UTF-16 code units), an incident comment. Identifiers (GUIDs, Defender ids, UPNs,
 * FQDNs) are validated, never cut: a cut identifier would name someone else.
 */
export const TEXT_LIMITS = {
  /** Display names, account names, domains, SIDs, labels, tactics, products, tags. */
  name: 256,
  /** A DNS name (RFC 1035). */
  hostName: 253,
  /** A UPN (Graph's userPrincipalName: 113 characters in practice; 320 as an e-mail address). */
  upn: 320,
  /** An incident's or alert's title. */
  title: 512,
  /** ARM ids, URLs, an unknown entity's value. */
  resource: 2048,
  /** The reason an action carries on the queue. */
  reason: 4000,
  /** An entry's state reason, a dead-lettered message's description. */
  note: 2000,
  /** One note in an entry's history or attempts (which keep 40 each: see LEDGER_LOG_LIMITS). */
  logNote: 500,
  /** A dead-lettered message's body as the ledger keeps it: under a Table storage property with room to spare. */
  deadLetterBody: 30_000,
} as const;

/** What marks text that was cut. */
export const CUT_MARK = '…';

/** `text`, at most `max` characters: when longer, its end is replaced by the cut mark (never half a surrogate pair). */
export function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - CUT_MARK.length;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--; // a high surrogate whose pair would be cut off
  return text.slice(0, end) + CUT_MARK;
}

/**
 * Line breaks, other control characters and the invisible or blank characters that reorder or hide text (bidirectional
 * overrides and isolates, zero-width joiners, soft hyphens, Hangul fillers): what lets a name forge lines or hide what
 * it says where it is shown.
 */
const UNPRINTABLE =
  // eslint-disable-next-line no-control-regex, no-misleading-character-class -- matching these characters one by one is the point
  /[\u0000-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\u3000\u3164\ufeff\uffa0]/g;

/** Whether text holds none of those characters: what an identifier shown to people must be. */
export function isPrintable(text: string): boolean {
  UNPRINTABLE.lastIndex = 0;
  return !UNPRINTABLE.test(text);
}

/** Text for display from outside: one line, nothing invisible, at most `max` characters (cut and marked). */
export function displayText(text: string, max: number): string {
  UNPRINTABLE.lastIndex = 0;
  const oneLine = UNPRINTABLE.test(text) ? text.replace(UNPRINTABLE, ' ') : text;
  return cut(oneLine, max);
}
