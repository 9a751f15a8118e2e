/**
 * Everything `serve` would refuse at start, found without starting anything: the one validation
 * that both `smarthost config check` and `smarthost serve` run, so a config that checks OK starts,
 * and both say the same words when it does not.
 *
 * Beyond the schema (config/load.ts): secrets given as { env } or { file } that cannot be read, the
 * console's password (a plain-text password, or none on a non-loopback address), the TLS
 * certificate files, the users file for client AUTH, the history store, and each upstream's
 * transport as the relay builds it (URL, credentials, CA file, OAuth2 certificate). Nothing is
 * written and no connection is made (doctor checks the world; this checks the file).
 */
import path from 'node:path';
import { SmarthostError } from '../../core/errors.ts';
import { silentLogger } from '../../core/logger.ts';
import { systemClock } from '../../core/clock.ts';
import { configDirOf, type Config } from '../../config/schema.ts';
import { resolveSecret } from '../../config/secret.ts';

/** Every start-up refusal of this configuration, each as serve words it; [] when it would start. */
export async function startupProblems(config: Config): Promise<SmarthostError[]> {
  const problems: SmarthostError[] = [];
  const check = async (fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      problems.push(e instanceof SmarthostError ? e : new SmarthostError('SH_CONFIG_INVALID', (e as Error).message, { cause: e }));
    }
  };
  if (config.web.enabled) {
    await check(async () => (await import('../../web/app.ts')).passwordHashFrom(config.web));
  }
  if (config.listen.some((l) => l.tls !== 'none')) {
    await check(async () => (await import('../../inbound/tls.ts')).configuredCertificate(config));
  }
  if (config.auth.enabled && config.auth.usersFile) {
    const file = path.resolve(configDirOf(config), config.auth.usersFile);
    await check(async () => (await import('../../inbound/auth.ts')).loadUsers(file));
  }
  if (config.history.store === 'postgres') {
    await check(() => {
      if (!config.history.postgresUrl) throw new SmarthostError('SH_CONFIG_INVALID', 'history.store is postgres but history.postgresUrl is not set');
      try {
        resolveSecret(config.history.postgresUrl);
      } catch (e) {
        throw new SmarthostError('SH_SECRET_MISSING', `history.postgresUrl: ${(e as Error).message}`);
      }
    });
  }
  // Each upstream's transport, built as serve builds it (credentials resolved, files read), then closed.
  const { buildTransports } = await import('./transports.ts');
  for (const u of config.upstreams) {
    await check(async () => {
      const built = await buildTransports({ ...config, upstreams: [u], delivery: { ...config.delivery, thread: false } }, { logger: silentLogger(), clock: systemClock });
      await Promise.all(built.transports.map((t) => t.close()));
    });
  }
  return problems;
}

/** Throws one SmarthostError listing every start-up refusal (the first one's code), or returns. */
export async function assertStartable(config: Config): Promise<void> {
  const problems = await startupProblems(config);
  if (problems.length === 0) return;
  // each line names the file it is about: the config file, unless the problem names another
  const where = (m: string) => (m.startsWith('/') || config.source === '(defaults)' ? m : `${config.source}: ${m}`);
  throw new SmarthostError(problems[0].code, problems.map((p) => where(p.message)).join('\n'), { cause: problems[0] });
}
