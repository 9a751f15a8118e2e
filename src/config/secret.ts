/**
 * Secrets (passwords, client secrets, keys) may be written in the YAML, or kept out of it:
 *   password: { env: SMARTHOST_O365_PASSWORD }    # from an environment variable
 *   password: { file: /etc/smarthost/o365.pass }  # first line of a file (owner-only permissions advised)
 * Resolved once at load time (secret-value.ts); the resolved value never reaches logs or the console.
 */
import { z } from 'zod';
import { resolveSecret } from './secret-value.ts';

export const secretSchema = z.union([
  z.string().min(1),
  z.strictObject({ env: z.string().min(1).describe('environment variable holding the secret') }),
  z.strictObject({ file: z.string().min(1).describe('file whose first line is the secret') }),
]);

// resolveSecret takes secret-value.ts's own SecretRef: every call with a parsed secret checks that the two agree.
export type SecretRef = z.infer<typeof secretSchema>;

export { resolveSecret };
