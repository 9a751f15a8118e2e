/**
 * A copy of the config safe to print or send to the browser: every secret value replaced by
 * "********". References ({ env: NAME } / { file: PATH }) are shown, since they hold no secret.
 */
const SECRET_KEYS = /^(password|pass|clientSecret|secret|token|refreshToken|accessToken|adminPassword|postgresUrl|privateKey|certificatePassword)$/i;

export function maskSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const isRef = v !== null && typeof v === 'object' && ('env' in v || 'file' in v);
      out[k] = SECRET_KEYS.test(k) && v !== undefined && !isRef ? '********' : maskSecrets(v);
    }
    return out as T;
  }
  return value;
}

/** Whether a config key holds a secret value (same rule as maskSecrets). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEYS.test(key);
}
