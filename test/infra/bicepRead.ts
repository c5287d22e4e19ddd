import type { Node } from 'web-tree-sitter';
import { propertyName, type BicepFile } from './bicep';

/**
 * Reading literal values out of a parsed Bicep file, for the checks on the Entra and Sentinel modules: a parameter's
 * default or a variable's value as data, every object in a resource that has some shape, the code without comments.
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
