import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isNode, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { ConfigError } from '../errors';
import { policySchema, type Policy } from './schema';

export interface LoadedPolicy {
  policy: Policy;
  /** Short sha256 of the policy text: every decision names the exact policy that produced it. */
  digest: string;
  /** Where it came from: a file path, `RESPONDER_POLICY` or `built-in default`. */
  origin: string;
}

/** The default policy shipped with the engine (documented line by line in the file). */
export const DEFAULT_POLICY_PATH = path.join(__dirname, 'default-policy.yaml');

/**
 * Parse and validate a policy. Every problem is reported at once, each as `line N: path: problem`, so a SOC
 * engineer fixes a file in one pass.
 */
export function parsePolicy(text: string, origin: string): LoadedPolicy {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      `policy ${origin} is not valid YAML`,
      doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`),
    );
  }
  let json: unknown;
  try {
    json = doc.toJS({ maxAliasCount: 50 });
  } catch (error) {
    // More alias references than allowed (a "billion laughs" document), or a reference the document cannot resolve.
    throw new ConfigError(`policy ${origin} is not valid YAML`, [(error as Error).message.split('\n')[0] as string]);
  }
  const result = policySchema.safeParse(json);
  if (!result.success) {
    throw new ConfigError(
      `policy ${origin} is invalid`,
      result.error.issues.map((issue) => {
        const where = formatPath(issue.path);
        const line = lineOf(doc, text, issue.path);
        return `${line ? `line ${line}: ` : ''}${where || '(top level)'}: ${plainMessage(issue.message)}`;
      }),
    );
  }
  return { policy: result.data, digest: createHash('sha256').update(text).digest('hex').slice(0, 12), origin };
}

export function readPolicyFile(file: string): LoadedPolicy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read policy file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parsePolicy(text, file);
}

/** Zod's wording for a missing field is "Invalid input: expected string, received undefined". */
function plainMessage(message: string): string {
  return /received undefined$/.test(message) ? 'is required' : message.replace(/^Invalid input: /, '');
}

function formatPath(segments: readonly PropertyKey[]): string {
  return segments.reduce<string>((out, s) => (typeof s === 'number' ? `${out}[${s}]` : out ? `${out}.${String(s)}` : String(s)), '');
}

/** The line of the deepest YAML node that exists on the path: the offending value or its nearest parent. */
function lineOf(doc: Document, text: string, segments: readonly PropertyKey[]): number | undefined {
  let node: unknown = doc.contents;
  let offset = isNode(node) ? node.range?.[0] : undefined;
  for (const segment of segments) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(segment));
      next = pair?.value ?? pair?.key;
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment];
    }
    if (!isNode(next) || !next.range) break;
    node = next;
    offset = next.range[0];
  }
  if (offset === undefined) return undefined;
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}
