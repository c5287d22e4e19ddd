import type { Node } from 'web-tree-sitter';
import { propertyName, type BicepFile } from './bicep';

/**
 * Reading declarations and literal values out of a parsed Bicep file, for the checks on the Entra and Sentinel modules:
 * a parameter's default and allowed values, a variable's value, every object in a resource that has some shape.
 */

export type BicepLiteral = string | number | boolean | null | BicepLiteral[] | { [name: string]: BicepLiteral };

/** A literal's value (strings, numbers, booleans, null, arrays and objects of those); an expression is an error. */
export function literal(node: Node): BicepLiteral {
  switch (node.type) {
    case 'string':
      if (node.namedChildren.some((child) => child?.type === 'interpolation')) throw new Error(`not a literal: ${node.text}`);
      return node.namedChildren.map((child) => (child?.type === 'escape_sequence' ? (child.text[1] ?? '') : (child?.text ?? ''))).join('');
    case 'number':
      return Number(node.text);
    case 'boolean':
      return node.text === 'true';
    case 'null':
      return null;
    case 'array':
      return node.namedChildren.flatMap((child) => (child ? [literal(child)] : []));
    case 'object': {
      const value: { [name: string]: BicepLiteral } = {};
      for (const property of node.namedChildren) {
        if (property?.type !== 'object_property') continue;
        const name = propertyName(property);
        const item = property.namedChildren[1];
        if (name !== undefined && item) value[name] = literal(item);
      }
      return value;
    }
    default:
      throw new Error(`not a literal (${node.type}): ${node.text.slice(0, 80)}`);
  }
}

export type DeclarationKind = 'parameter_declaration' | 'variable_declaration' | 'output_declaration' | 'resource_declaration';

/** The top-level declaration of that kind and name. */
export function declaration(file: BicepFile, kind: DeclarationKind, name: string): Node {
  const found = file.root.namedChildren.find((node) => node?.type === kind && node.namedChildren[0]?.text === name);
  if (!found) throw new Error(`${file.path} declares no ${kind.replace('_declaration', '')} ${name}`);
  return found;
}

/** A parameter's or variable's value expression: its default, or what it is set to. */
export function valueOf(node: Node): Node {
  const value = node.namedChildren.at(-1);
  if (!value || value.type === 'type' || value.type === 'identifier') throw new Error(`${node.text.slice(0, 60)} has no value`);
  return value;
}

/** The decorators written above a declaration, by name, with their argument nodes. */
export function decorators(node: Node): Map<string, Node[]> {
  const found = new Map<string, Node[]>();
  const previous = node.previousNamedSibling;
  if (previous?.type !== 'decorators') return found;
  for (const decorator of previous.namedChildren) {
    const call = decorator?.namedChildren[0];
    const name = call?.childForFieldName('function')?.text;
    const args = call?.childForFieldName('arguments')?.namedChildren ?? [];
    if (name)
      found.set(
        name,
        args.flatMap((arg) => (arg ? [arg] : [])),
      );
  }
  return found;
}

/** Every object node under `root` (itself included) whose `type` property is that string. */
export function objectsOfType(root: Node, type: string): Node[] {
  return [root, ...root.descendantsOfType('object')].filter((node): node is Node => {
    if (node?.type !== 'object') return false;
    const property = node.namedChildren.find((child) => child?.type === 'object_property' && propertyName(child) === 'type');
    const value = property?.namedChildren[1];
    return value?.type === 'string' && value.text === `'${type}'`;
  });
}

/** The file's text with comments blanked, for checks that must not be fooled (or tripped) by prose. */
export function codeOf(file: BicepFile): string {
  let text = file.text;
  for (const comment of file.root.descendantsOfType('comment')) {
    if (comment) text = text.slice(0, comment.startIndex) + ' '.repeat(comment.endIndex - comment.startIndex) + text.slice(comment.endIndex);
  }
  return text;
}
