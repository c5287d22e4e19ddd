import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Language, Parser, type Node } from 'web-tree-sitter';

/**
 * Bicep read offline, for CI checks that cannot run the Bicep CLI (this machine has no network but npm): the
 * tree-sitter grammar (tree-sitter-bicep 1.1.0, its WebAssembly build on web-tree-sitter) parses each file, and the
 * helpers below read resources and their properties by name from the tree.
 */

export const INFRA = join(__dirname, '../../infra');

let parser: Promise<Parser> | undefined;

async function bicepParser(): Promise<Parser> {
  parser ??= (async () => {
    await Parser.init();
    const parsing = new Parser();
    parsing.setLanguage(await Language.load(require.resolve('tree-sitter-bicep/tree-sitter-bicep.wasm')));
    return parsing;
  })();
  return parser;
}

/**
 * `extension <name>` (Bicep 0.30 and later: the Microsoft Graph extension) postdates the grammar, which knows its
 * predecessors `import` and `provider` only: the statement is blanked (its length kept, so positions hold) and checked
 * by shape instead.
 */
const EXTENSION = /^extension[ \t]+(?:[A-Za-z_][\w]*|'[^'\n]*')(?:[ \t]+as[ \t]+[A-Za-z_]\w*)?[ \t]*$/gm;

export interface BicepFile {
  path: string;
  text: string;
  root: Node;
  /** Each syntax error: where, and the text the grammar could not read. */
  errors: string[];
}

export async function parseBicep(text: string, path = '<text>'): Promise<BicepFile> {
  const masked = text.replace(EXTENSION, (statement) => ' '.repeat(statement.length));
  const tree = (await bicepParser()).parse(masked);
  if (!tree) throw new Error(`tree-sitter gave no tree for ${path}`);
  const errors: string[] = [];
  const visit = (node: Node): void => {
    if (node.isError || node.isMissing) {
      errors.push(
        `${path}:${node.startPosition.row + 1}:${node.startPosition.column + 1}: ${node.isMissing ? `missing ${node.type}` : `cannot read ${JSON.stringify(node.text.slice(0, 80))}`}`,
      );
      return;
    }
    for (const child of node.children) if (child) visit(child);
  };
  visit(tree.rootNode);
  return { path, text, root: tree.rootNode, errors };
}

const REPOSITORY = join(INFRA, '..');

/** Every file under infra/, by absolute path, sorted. */
function infraPaths(): string[] {
  return (readdirSync(INFRA, { recursive: true, withFileTypes: true }) as Array<{ name: string; parentPath: string; isFile(): boolean }>)
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

/** Every `.bicep` file under infra/, parsed. */
export async function infraFiles(): Promise<BicepFile[]> {
  const paths = infraPaths().filter((path) => path.endsWith('.bicep'));
  return Promise.all(paths.map((path) => parseBicep(readFileSync(path, 'utf8'), relative(REPOSITORY, path))));
}

/** Every file under infra/ (templates, their JSON, scripts, docs) and azure.yaml, as text. */
export function infraTexts(): Array<{ path: string; text: string }> {
  return [...infraPaths(), join(REPOSITORY, 'azure.yaml')].map((path) => ({ path: relative(REPOSITORY, path), text: readFileSync(path, 'utf8') }));
}

/** A resource declaration: its symbol, its type and API version, and its body (the object after `=`, or in a loop/if). */
export interface BicepResource {
  file: string;
  symbol: string;
  type: string;
  apiVersion: string;
  body: Node;
}

export function resources(file: BicepFile): BicepResource[] {
  return file.root.descendantsOfType('resource_declaration').flatMap((node) => {
    if (!node) return [];
    const [symbol, typeString] = node.namedChildren;
    const body = node.descendantsOfType('object')[0];
    if (!symbol || !typeString || !body) return [];
    const [type = '', apiVersion = ''] = unquote(typeString.text).split('@');
    return [{ file: file.path, symbol: symbol.text, type, apiVersion, body }];
  });
}

/** The value node at `path` (dot-separated property names) in an object node, if present. */
export function valueAt(object: Node, path: string): Node | undefined {
  let current: Node | undefined = object;
  for (const name of path.split('.')) {
    if (current?.type !== 'object') return undefined;
    const property: Node | undefined = current.namedChildren.find((child) => child?.type === 'object_property' && propertyName(child) === name) ?? undefined;
    current = property?.namedChildren[1] ?? undefined;
  }
  return current;
}

/** A property's name as written (`name:` or `'name':`). */
export function propertyName(property: Node): string | undefined {
  const key = property.namedChildren[0];
  return key ? unquote(key.text) : undefined;
}

/** A string literal's content, quotes taken off (interpolations left as written). */
export function unquote(text: string): string {
  return text.length >= 2 && text.startsWith("'") && text.endsWith("'") ? text.slice(1, -1) : text;
}

/** A `param`, `var`, `module` or `output` declaration: its name, its value (a param's default), its decorators by name. */
export interface BicepDeclaration {
  file: string;
  name: string;
  /** A param's default, a var's or output's value, a module's body; undefined for a param without a default. */
  value: Node | undefined;
  /** A module's path (`modules/x.bicep`). */
  path?: string;
  /** Each decorator's arguments, by its name (`description`, `minValue`, …). */
  decorators: Map<string, Node[]>;
}

const DECLARATIONS = { param: 'parameter_declaration', var: 'variable_declaration', module: 'module_declaration', output: 'output_declaration' } as const;

export function declarations(file: BicepFile, kind: keyof typeof DECLARATIONS): BicepDeclaration[] {
  return file.root.namedChildren.flatMap((node) => {
    if (node?.type !== DECLARATIONS[kind]) return [];
    const [name, ...rest] = node.namedChildren;
    if (!name) return [];
    const decorators = new Map<string, Node[]>();
    const before = node.previousNamedSibling;
    if (before?.type === 'decorators')
      for (const decorator of before.namedChildren) {
        const call = decorator?.namedChildren[0];
        const callee = call?.namedChildren[0];
        if (call?.type === 'call_expression' && callee)
          decorators.set(
            callee.text,
            (call.namedChildren[1]?.namedChildren ?? []).filter((n) => n !== null),
          );
      }
    const last = rest.at(-1) ?? undefined;
    const value = kind === 'param' && last?.type === 'type' ? undefined : last;
    const path = kind === 'module' ? unquote(rest[0]?.text ?? '') : undefined;
    return [{ file: file.path, name: name.text, value, decorators, ...(path !== undefined && { path }) }];
  });
}

/** The one declaration of `kind` named `name` in `file`; throws if there is none. */
export function declaration(file: BicepFile, kind: keyof typeof DECLARATIONS, name: string): BicepDeclaration {
  const found = declarations(file, kind).find((d) => d.name === name);
  if (!found) throw new Error(`${file.path}: no ${kind} ${name}`);
  return found;
}

/** A declaration's value (a param's default), which must be there. */
export function valueOf(declared: BicepDeclaration): Node {
  if (!declared.value) throw new Error(`${declared.file}: ${declared.name} has no value`);
  return declared.value;
}

/** The property names of an object node, in order. */
export function objectKeys(object: Node): string[] {
  return object.namedChildren.flatMap((child) => (child?.type === 'object_property' ? [propertyName(child) ?? ''] : []));
}

/** The app settings main.bicep gives the Function App: `appSettings` and the memory settings united with it. */
export function appSettingNames(main: BicepFile): string[] {
  return ['appSettings', 'memorySettings'].flatMap((name) => {
    const value = declarations(main, 'var').find((d) => d.name === name)?.value;
    if (!value) return [];
    const objects = value.type === 'object' ? [value] : value.descendantsOfType('object').filter((o) => o !== null);
    return objects.flatMap(objectKeys);
  });
}
