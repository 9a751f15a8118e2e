/**
 * A secret's value from where the configuration says it is (config/secret.ts has the syntax). Apart
 * from the schema, so that the delivery thread, which resolves its upstream's password, does not
 * load the configuration's validation library into its heap.
 */
import { readFileSync } from 'node:fs';

/** A secret as written in the configuration: the value itself, an environment variable or a file. */
export type SecretRef = string | { env: string } | { file: string };

/** Returns the secret's value, or throws an Error whose message names the source. */
export function resolveSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof ref === 'string') return ref;
  if ('env' in ref) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new Error(`environment variable ${ref.env} is not set`);
    return v;
  }
  try {
    return readFileSync(ref.file, 'utf8').split(/\r?\n/)[0];
  } catch (e) {
    throw new Error(`cannot read secret file ${ref.file}: ${(e as Error).message}`);
  }
}
