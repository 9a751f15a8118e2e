/**
 * Reads the SMTP part of an IIS 6 metabase (MetaBase.xml, %windir%\system32\inetsrv): the
 * service defaults (`IIsSmtpService`, Location /LM/SmtpSvc) and each virtual server
 * (`IIsSmtpServer`, /LM/SmtpSvc/N). Properties are XML attributes; SMTP properties are INHERIT
 * (https://learn.microsoft.com/previous-versions/iis/6.0-sdk/ms525280(v=vs.90) and siblings), so a
 * server's effective value is its own, else the service's. Errors name the file and line.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { SmarthostError } from '../core/errors.ts';

export interface MetabaseProperty {
  name: string;
  value: string;
  /** Where the value came from: the virtual server itself or the service defaults it inherits. */
  from: 'server' | 'service';
  line?: number;
}

export interface SmtpVirtualServer {
  /** N of /LM/SmtpSvc/N. */
  id: string;
  location: string;
  /** ServerComment, e.g. "[SMTP Virtual Server #1]". */
  name: string;
  bindings: string;
  line?: number;
  /** Effective properties (own + inherited), in file order, own first. */
  properties: Map<string, MetabaseProperty>;
  /** IIsSmtpDomain entries under /LM/SmtpSvc/N/Domain/ (remote and local domains). */
  domains: Array<{ name: string; routeAction?: string; smartHost?: string; line?: number }>;
}

type Node = Record<string, unknown> & { ':@'?: Record<string, string> };

/** Attributes that describe the element rather than configure the server. */
const STRUCTURAL = new Set(['location', 'xmlns']);

export function readSmtpServers(text: string, file: string): SmtpVirtualServer[] {
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new SmarthostError('SH_CONFIG_INVALID', `not a well-formed XML file: ${valid.err.msg}`, { file, line: valid.err.line, column: valid.err.col });
  }
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', preserveOrder: true, parseAttributeValue: false, trimValues: false, processEntities: true });
  const tree = parser.parse(text) as Node[];
  const elements: Array<{ tag: string; attrs: Record<string, string> }> = [];
  const walk = (nodes: Node[], parent?: Record<string, string>) => {
    for (const n of nodes) {
      const tag = Object.keys(n).find((k) => k !== ':@');
      if (!tag) continue;
      const attrs = n[':@'];
      let here = parent;
      if (attrs?.Location !== undefined) {
        here = { ...attrs };
        elements.push({ tag, attrs: here });
      } else if (parent && tag.toLowerCase() === 'custom' && attrs?.Name) {
        // A property the schema does not name is written as <Custom Name=… Value=…> inside its
        // location element; it counts like an attribute (the attribute wins when both exist).
        parent[attrs.Name] ??= attrs.Value ?? '';
      }
      if (Array.isArray(n[tag])) walk(n[tag] as Node[], here);
    }
  };
  walk(tree);
  if (!elements.some((e) => /^IIs/i.test(e.tag))) {
    throw new SmarthostError('SH_CONFIG_INVALID', 'no IIS metabase elements found (expected MetaBase.xml from %windir%\\system32\\inetsrv, with <IIsSmtpServer Location="/LM/SmtpSvc/1" …>)', { file });
  }
  const norm = (loc: string) => loc.trim().replace(/\/+$/, '').toLowerCase();
  const service = elements.find((e) => e.tag.toLowerCase() === 'iissmtpservice' || norm(e.attrs.Location) === '/lm/smtpsvc');
  const servers = elements.filter((e) => e.tag.toLowerCase() === 'iissmtpserver');
  if (servers.length === 0) {
    throw new SmarthostError('SH_CONFIG_INVALID', 'this metabase has no SMTP virtual server (no <IIsSmtpServer Location="/LM/SmtpSvc/N">): was the SMTP service installed on that machine?', { file });
  }
  return servers.map((s) => {
    const location = s.attrs.Location.trim();
    const m = /^\/LM\/SmtpSvc\/([^/]+)$/i.exec(location.replace(/\/+$/, ''));
    if (!m) throw new SmarthostError('SH_CONFIG_INVALID', `IIsSmtpServer has Location "${location}"; expected /LM/SmtpSvc/N`, { file, line: lineOf(text, location) });
    const serverLine = lineOf(text, location);
    const props = new Map<string, MetabaseProperty>();
    const add = (attrs: Record<string, string>, from: 'server' | 'service', loc: string) => {
      for (const [name, value] of Object.entries(attrs)) {
        if (STRUCTURAL.has(name.toLowerCase()) || props.has(name)) continue;
        props.set(name, { name, value, from, line: propertyLine(text, loc, name) });
      }
    };
    add(s.attrs, 'server', location);
    if (service) add(service.attrs, 'service', service.attrs.Location.trim());
    const prefix = `${norm(location)}/domain/`;
    const domains = elements
      .filter((e) => e.tag.toLowerCase() === 'iissmtpdomain' && norm(e.attrs.Location).startsWith(prefix))
      .map((e) => ({ name: e.attrs.Location.trim().slice(prefix.length), routeAction: e.attrs.RouteAction, smartHost: e.attrs.SmartHost ?? e.attrs.RouteActionString, line: lineOf(text, e.attrs.Location.trim()) }));
    return {
      id: m[1],
      domains,
      location,
      name: s.attrs.ServerComment ?? '',
      bindings: (props.get('ServerBindings')?.value ?? '').trim().split(/\s+/).join(' '),
      line: serverLine,
      properties: props,
    };
  });
}

/** 1-based line of the element with this Location in the raw text. */
function lineOf(text: string, location: string): number | undefined {
  const at = locationIndex(text, location);
  return at < 0 ? undefined : text.slice(0, at).split('\n').length;
}

function locationIndex(text: string, location: string): number {
  const esc = location.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`Location\\s*=\\s*["']${esc}["']`, 'i').exec(text);
  return m ? m.index : -1;
}

/** 1-based line of `name=` inside the element with this Location. */
function propertyLine(text: string, location: string, name: string): number | undefined {
  const start = locationIndex(text, location);
  if (start < 0) return undefined;
  const end = text.indexOf('>', start);
  const re = new RegExp(`\\b${name}\\s*=`, 'g');
  re.lastIndex = start;
  const m = re.exec(text);
  if (!m || (end >= 0 && m.index > end)) return undefined;
  return text.slice(0, m.index).split('\n').length;
}
