/**
 * Secrets (passwords, client secrets, keys) may be written in the YAML, or kept out of it:
 *   password: { env: SMARTHOST_O365_PASSWORD }    # from an environment variable
 *   password: { file: /etc/smarthost/o365.pass }  # first line of a file (owner-only permissions advised)
 * Resolved once at load time; the resolved value never reaches logs or the console.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const secretSchema = z.union([
  z.string().min(1),
  z.strictObject({ env: z.string().min(1).describe('environment variable holding the secret') }),
  z.strictObject({ file: z.string().min(1).describe('file whose first line is the secret') }),
]);

export type SecretRef = z.infer<typeof secretSchema>;

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
