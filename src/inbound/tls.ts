/**
 * The certificate for STARTTLS and implicit TLS: the configured PEM files, or else a self-signed
 * one generated on first start (selfsigned package) and stored under <mailroot>/tls/ (key 0600),
 * reused on later starts and replaced when it has expired. Logs a warning when the certificate
 * expires within tls.expiryWarningDays. Throws SH_CONFIG_READ naming the file when configured
 * files cannot be read, and when no certificate is configured and self-signing is off.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { generate } from 'selfsigned';
import { SmarthostError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { Clock } from '../core/clock.ts';
import { configDirOf, type Config } from '../config/schema.ts';

export interface Certificate {
  key: string;
  cert: string;
  notAfter: Date;
  /** Where it came from: the configured file or the generated one. */
  source: string;
  selfSigned: boolean;
}

const DAY = 86_400_000;
const SELF_SIGNED_DAYS = 825;

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new SmarthostError('SH_CONFIG_READ', `${file}: the TLS ${what} could not be read (${(err as Error).message})`, { file, cause: err });
  }
}

function notAfterOf(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}

function resolvePath(config: Config, file: string): string {
  return path.resolve(configDirOf(config), file);
}

async function selfSigned(config: Config, clock: Clock, logger: Logger): Promise<Certificate> {
  const dir = path.join(config.mailrootPath, 'tls');
  const keyFile = path.join(dir, 'selfsigned.key');
  const certFile = path.join(dir, 'selfsigned.crt');
  if (existsSync(keyFile) && existsSync(certFile)) {
    const cert = readFileSync(certFile, 'utf8');
    const notAfter = notAfterOf(cert);
    if (notAfter.getTime() > clock.now()) return { key: readFileSync(keyFile, 'utf8'), cert, notAfter, source: certFile, selfSigned: true };
    logger.warn({ file: certFile, notAfter: notAfter.toISOString() }, 'the self-signed TLS certificate has expired: generating a new one');
  }
  const name = config.hostnameResolved;
  const now = new Date(clock.now());
  // Loaded only to generate: the package pulls in an ASN.1 stack (over 500 modules, about 10 MB).
  const { generate: generateCertificate } = await import('selfsigned');
  const pems = await generateCertificate([{ name: 'commonName', value: name }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - DAY),
    notAfterDate: new Date(now.getTime() + SELF_SIGNED_DAYS * DAY),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: name }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  } as Parameters<typeof generate>[1]);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert);
  logger.info({ file: certFile, hostname: name }, 'generated a self-signed TLS certificate for STARTTLS (clients that verify certificates will not trust it; configure tls.cert/tls.key for one they do)');
  return { key: pems.private, cert: pems.cert, notAfter: notAfterOf(pems.cert), source: certFile, selfSigned: true };
}

/**
 * The configured certificate (PEM files read and parsed), or undefined when a self-signed one is
 * to be used. Throws what start would refuse; generates nothing, so `config check` calls it too.
 */
export function configuredCertificate(config: Config): Certificate | undefined {
  if (config.tls.cert || config.tls.key) {
    if (!config.tls.cert || !config.tls.key) {
      throw new SmarthostError('SH_CONFIG_INVALID', `${config.source}: tls.cert and tls.key must be given together`, { file: config.source });
    }
    const certFile = resolvePath(config, config.tls.cert);
    const cert = readPem(certFile, 'certificate');
    const key = readPem(resolvePath(config, config.tls.key), 'key');
    let notAfter: Date;
    try {
      notAfter = notAfterOf(cert);
    } catch (err) {
      throw new SmarthostError('SH_CONFIG_INVALID', `${certFile}: not a PEM certificate (${(err as Error).message})`, { file: certFile, cause: err });
    }
    return { key, cert, notAfter, source: certFile, selfSigned: false };
  }
  if (config.tls.selfSigned) return undefined;
  throw new SmarthostError('SH_CONFIG_INVALID', `${config.source}: a listener uses TLS but no tls.cert/tls.key is set and tls.selfSigned is off`, { file: config.source });
}

/** Loads or generates the certificate, and warns when it is about to expire. */
export async function loadCertificate(config: Config, logger: Logger, clock: Clock): Promise<Certificate> {
  const result = configuredCertificate(config) ?? await selfSigned(config, clock, logger);
  const daysLeft = Math.floor((result.notAfter.getTime() - clock.now()) / DAY);
  if (daysLeft <= config.tls.expiryWarningDays) {
    logger.warn({ file: result.source, notAfter: result.notAfter.toISOString(), daysLeft }, `the TLS certificate expires in ${daysLeft} day(s): renew it${result.selfSigned ? ' (delete the files under mailroot/tls/ to generate a new one)' : ''}`);
  }
  return result;
}
