/**
 * The config file as the console shows and edits it: secret values replaced by "********"
 * (comments and layout kept), and put back from the file on disk when the edited text still says
 * "********", so an admin can change a retry interval without ever seeing or retyping a password.
 * References to secrets ({ env: NAME } / { file: PATH }) hold no secret and are shown as they are.
 */
import { isMap, isScalar, parseDocument, visit, type Document } from 'yaml';
import { isSecretKey } from '../config/mask.ts';

export const MASK = '********';

/** Path of keys and indexes from the root to each secret scalar. */
function secretScalars(doc: Document, fn: (path: (string | number)[], node: { value: unknown }) => void): void {
  visit(doc, {
    Pair(_key, pair, path) {
      if (!isScalar(pair.key) || !isSecretKey(String(pair.key.value)) || !isScalar(pair.value)) return;
      const keys: (string | number)[] = [];
      let parent: unknown = doc.contents;
      for (const p of path.slice(1)) {
        if (isMap(parent) || (parent && typeof parent === 'object' && 'items' in parent)) {
          const items = (parent as { items: unknown[] }).items;
          const idx = items.indexOf(p);
          if (idx >= 0) keys.push(isMap(parent) ? String((p as { key: { value: unknown } }).key.value) : idx);
        }
        parent = isScalar(p) ? p : (p as { value?: unknown }).value ?? p;
      }
      keys.push(String(pair.key.value));
      fn(keys, pair.value);
    },
  });
}

/** The file text with every secret value replaced by MASK. Unparseable text is not shown at all. */
export function maskConfigText(text: string): string {
  const doc = parseDocument(text);
  if (doc.errors.length) return '# the config file on disk does not parse; fix it on the host\n';
  secretScalars(doc, (_path, node) => {
    node.value = MASK;
  });
  return doc.toString();
}

/** The edited text with each MASK put back to the secret at the same place in the original text. */
export function unmaskConfigText(edited: string, original: string): string {
  const doc = parseDocument(edited);
  if (doc.errors.length) return edited;
  const orig = parseDocument(original);
  let changed = false;
  secretScalars(doc, (path, node) => {
    if (node.value !== MASK) return;
    const value = orig.getIn(path);
    if (typeof value === 'string') {
      node.value = value;
      changed = true;
    }
  });
  return changed ? doc.toString() : edited;
}
