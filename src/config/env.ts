/**
 * The common settings from SMARTHOST_* environment variables, for containers (Dockerfile,
 * docker-compose.yml) where a config file is one more thing to mount.
 *
 * The environment wins: a variable that is set replaces the key it names in the config file (or
 * the embedded defaults when there is no file), as `docker run -e` users expect of an image. Keys
 * no variable names come from the file. Every variable, and the key it sets, is in docs/install.md
 * ("Container"). Secrets are not copied into the config: the key becomes { env: NAME }, so
 * `config show` and the console never print them.
 */
import { isIP } from 'node:net';
import { SmarthostError } from '../core/errors.ts';

/** Variable → what it sets, for help texts and docs. */
export const ENV_SETTINGS: Record<string, string> = {
  SMARTHOST_HOSTNAME: 'hostname',
  SMARTHOST_MAILROOT: 'mailroot',
  SMARTHOST_LISTEN: 'listen: comma-separated ADDRESS:PORT[/starttls|implicit|none], e.g. "0.0.0.0:25,[::]:25"',
  SMARTHOST_RELAY_LIST: 'access.relay: mode only, this comma-separated list of addresses/CIDR ranges',
  SMARTHOST_CONNECTION_LIST: 'access.connection: mode only, this comma-separated list of addresses/CIDR ranges',
  SMARTHOST_UPSTREAM_URL: 'upstreams: one upstream (named by SMARTHOST_UPSTREAM_NAME, default "upstream") at this URL',
  SMARTHOST_UPSTREAM_USERNAME: 'upstreams[0].username',
  SMARTHOST_UPSTREAM_PASSWORD: 'upstreams[0].password (kept as { env: SMARTHOST_UPSTREAM_PASSWORD })',
  SMARTHOST_UPSTREAM_PASSWORD_FILE: 'upstreams[0].password from this file (Docker secrets)',
  SMARTHOST_WEB_LISTEN: 'web.address and web.port: ADDRESS:PORT; also turns the console on',
  SMARTHOST_WEB_PASSWORD_HASH: 'web.adminPassword (a scrypt hash from `smarthost users hash`)',
  SMARTHOST_HISTORY_POSTGRES_URL: 'history: store postgres at this URL (kept as { env: SMARTHOST_HISTORY_POSTGRES_URL })',
};

type Data = Record<string, unknown>;

function bad(name: string, value: string, expected: string): never {
  throw new SmarthostError('SH_CONFIG_INVALID', `environment variable ${name}: expected ${expected}, got "${value}"`);
}

/** "0.0.0.0:25", "[::]:25", "0.0.0.0:465/implicit" → address, port, tls. */
function hostPort(name: string, item: string, withTls: boolean): { address: string; port: number; tls?: string } {
  const m = /^(?:\[([^\]]+)\]|([^:/\s]+)):(\d{1,5})(?:\/(starttls|implicit|none))?$/.exec(item);
  const address = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !address || !isIP(address) || port < 1 || port > 65535 || (m[4] && !withTls)) {
    bad(name, item, withTls ? 'ADDRESS:PORT[/starttls|implicit|none], IPv6 as [ADDRESS]:PORT' : 'ADDRESS:PORT, IPv6 as [ADDRESS]:PORT');
  }
  return { address, port, ...(m[4] ? { tls: m[4] } : {}) };
}

const list = (v: string) => v.split(/[\s,]+/).filter(Boolean);
const obj = (v: unknown): Data => (v && typeof v === 'object' && !Array.isArray(v) ? { ...(v as Data) } : {});

/**
 * Returns the config data (as read from YAML, before validation) with the environment's settings
 * applied, and the names of the variables used. Throws SH_CONFIG_INVALID naming a malformed variable.
 */
export function applyEnvOverrides(data: Data, env: NodeJS.ProcessEnv = process.env): { data: Data; applied: string[] } {
  const out: Data = { ...data };
  const applied: string[] = [];
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    if (!v) return undefined;
    applied.push(name);
    return v;
  };

  const hostname = get('SMARTHOST_HOSTNAME');
  if (hostname) out.hostname = hostname;
  const mailroot = get('SMARTHOST_MAILROOT');
  if (mailroot) out.mailroot = mailroot;
  const listen = get('SMARTHOST_LISTEN');
  if (listen) out.listen = list(listen).map((item) => hostPort('SMARTHOST_LISTEN', item, true));

  const relay = get('SMARTHOST_RELAY_LIST');
  const connection = get('SMARTHOST_CONNECTION_LIST');
  if (relay || connection) {
    const access = obj(out.access);
    if (relay) access.relay = { ...obj(access.relay), mode: 'only', list: list(relay) };
    if (connection) access.connection = { ...obj(access.connection), mode: 'only', list: list(connection) };
    out.access = access;
  }

  const url = get('SMARTHOST_UPSTREAM_URL');
  const username = get('SMARTHOST_UPSTREAM_USERNAME');
  const password = get('SMARTHOST_UPSTREAM_PASSWORD') !== undefined ? { env: 'SMARTHOST_UPSTREAM_PASSWORD' } : undefined;
  const passwordFile = get('SMARTHOST_UPSTREAM_PASSWORD_FILE');
  if (url) {
    out.upstreams = [{ name: env.SMARTHOST_UPSTREAM_NAME?.trim() || 'upstream', url }];
  } else if (username || password || passwordFile) {
    const upstreams = Array.isArray(out.upstreams) ? out.upstreams : [];
    if (upstreams.length !== 1) {
      throw new SmarthostError('SH_CONFIG_INVALID', `environment variables ${applied.filter((n) => n.startsWith('SMARTHOST_UPSTREAM_')).join(', ')} set the upstream's credentials, but ${upstreams.length === 0 ? 'no upstream is configured: set SMARTHOST_UPSTREAM_URL too' : 'the config file has several upstreams: set them in the file'}`);
    }
    out.upstreams = [{ ...obj(upstreams[0]) }];
  }
  if (username || password || passwordFile) {
    const first = (out.upstreams as Data[])[0];
    if (username) first.username = username;
    if (password) first.password = password;
    else if (passwordFile) first.password = { file: passwordFile };
  }

  const web = get('SMARTHOST_WEB_LISTEN');
  const hash = get('SMARTHOST_WEB_PASSWORD_HASH') !== undefined ? { env: 'SMARTHOST_WEB_PASSWORD_HASH' } : undefined;
  if (web || hash) {
    const w = obj(out.web);
    if (web) Object.assign(w, { enabled: true, ...hostPort('SMARTHOST_WEB_LISTEN', web, false) });
    if (hash) w.adminPassword = hash;
    out.web = w;
  }

  if (get('SMARTHOST_HISTORY_POSTGRES_URL') !== undefined) {
    out.history = { ...obj(out.history), store: 'postgres', postgresUrl: { env: 'SMARTHOST_HISTORY_POSTGRES_URL' } };
  }
  return { data: out, applied };
}
