// page-links: one host call (agentos.net_http_get, under the agent's own network policy), then
// plain string work. QuickJS has no DOM and no URL class, so HTML is scanned with regular
// expressions and relative links are resolved by hand: good enough for an outline.
import { callTool, log } from 'agentos:skill/host@0.1.0';

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

function decode(text) {
  return text
    .replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec) => String.fromCodePoint(parseInt(dec, 10)))
    .replace(/&([a-z]+);/gi, (whole, name) => ENTITIES[name.toLowerCase()] ?? whole);
}

function clean(html) {
  return decode(html.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ').trim();
}

function attribute(tag, name) {
  const found = new RegExp(`\\b${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  return found ? decode(found[2] ?? found[3] ?? found[4] ?? '') : undefined;
}

// Resolves `href` against `base` (an absolute http(s) URL); undefined for links that go nowhere
// a reader could follow (fragments, javascript:, mailto:, ...).
function resolve(href, base) {
  href = href.trim();
  if (!href || href.startsWith('#')) return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(href);
  if (scheme) return /^https?$/i.test(scheme[1]) ? href : undefined;
  const origin = /^(https?:\/\/[^/?#]+)/i.exec(base)[1];
  if (href.startsWith('//')) return base.split(':')[0] + ':' + href;
  if (href.startsWith('/')) return origin + href;
  const path = base.slice(origin.length).split(/[?#]/)[0] || '/';
  const dir = path.slice(0, path.lastIndexOf('/') + 1);
  const parts = [];
  for (const part of (dir + href).split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '.') parts.push(part);
  }
  return origin + parts.join('/').replace(/^(?!\/)/, '/');
}

export function readPage(url, maxLinks) {
  const limit = maxLinks ?? 50;
  // callTool throws the host's error message, which the capability passes on as its own.
  const answer = JSON.parse(callTool('agentos.net_http_get', JSON.stringify({ url })));
  const type = answer.headers['content-type'] ?? '';
  if (answer.body == null || (type && !/html|xml/i.test(type))) {
    throw `${answer.url} is not an HTML page (status ${answer.status}, content-type ${type || 'unknown'})`;
  }
  const html = answer.body;
  const title = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(html);
  let description;
  for (const meta of html.match(/<meta\b[^>]*>/gi) ?? []) {
    if ((attribute(meta, 'name') ?? '').toLowerCase() === 'description') {
      description = attribute(meta, 'content');
      break;
    }
  }
  const links = [];
  const seen = new Set();
  for (const found of html.matchAll(/<a\b([^>]*)>([\s\S]*?)<\/a>/gi)) {
    if (links.length >= limit) break;
    const href = attribute(found[1], 'href');
    const absolute = href === undefined ? undefined : resolve(href, answer.url);
    if (absolute === undefined || seen.has(absolute)) continue;
    seen.add(absolute);
    links.push({ href: absolute, text: clean(found[2]) });
  }
  log('info', `${answer.url}: ${links.length} links`);
  return {
    url: answer.url,
    status: answer.status,
    title: title ? clean(title[1]) : undefined,
    description,
    links,
  };
}
